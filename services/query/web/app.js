// The city command's dashboard: campaign coverage under "1+7+N" and statistics, live.
// Plain JavaScript, no framework, no network beyond this server: the JSON API under api/ and
// the event stream api/events, which says when to refetch.
"use strict";

(() => {
  // The KPI tiles in order. The talks come last, together: on the wall screen's four columns
  // (app.css) they are its third row, all three of them, not the remnant of a row.
  const METRICS = [
    ["visits", "督导检查"],
    ["problems_found", "发现问题"],
    ["problems_rectified", "整改问题"],
    ["problems_open", "未整改问题"],
    ["accountability_persons", "问责人次"],
    ["sanctioned_persons", "处分人数"],
    ["recommendations", "纪检监察建议书"],
    ["regulations_improved", "完善制度"],
    ["talk_persons", "谈话人次"],
    ["talk_persons_top_leader", "一把手谈话"],
    ["talk_persons_admonishment", "约谈人次"],
  ];
  const LABEL = Object.fromEntries(METRICS);
  const AREAS = [
    ["", "全部领域"],
    ["vaccination", "疫苗接种"],
    ["epidemic", "疫情防控"],
    ["ecology", "生态环保"],
    ["grain", "粮食购销"],
    ["fishing_ban", "长江禁捕"],
  ];
  // The tiers of "1+7+N"; each card shows how many groups this campaign has in its tier.
  const TIERS = {
    TIER_TASK_FORCE: "工作专班",
    TIER_CITY: "市本级督导组",
    TIER_COUNTY: "县市区督导组",
  };
  // What the children of a scope at this depth are (city 0, county 1, township 2).
  const CHILDREN = ["县市区", "乡镇(街道)", "村(社区)"];
  const MARKS = ["covered", "uncovered", "outside"];
  const GRAIN = { day: "按日", week: "按周", month: "按月" };
  const MAX_PERIODS = 5000; // the hub answers at most so many periods at once (README)
  const MAX_DRILL = 2; // city -> county -> township: a township's children are villages
  // The depth of the page's top unit: a scoped token's page starts at its scope, not the city.
  const LEVEL_DEPTH = { LEVEL_CITY: 0, LEVEL_COUNTY: 1, LEVEL_TOWNSHIP: 2, LEVEL_VILLAGE: 3 };
  const MAX_LISTED = 150;
  const DAY_MS = 86400000;
  // The page's zone: its series is asked by Beijing day, week and month, as it shows every
  // moment in Beijing time (UTC+8 all year).
  const TIME_ZONE = "Asia/Shanghai";
  const BEIJING_MS = 8 * 3600000;
  const CAMPAIGNS_EVERY_MS = 5000;
  const REOPEN_MS = 5000; // an event stream the server refused is asked for again
  // A stream unheard for two of the hub's heartbeats (hello says how often) and a margin is
  // dead: a hub hung, or a link gone without a reset, closes nothing, and the page said 实时
  // over frozen figures for as long as it lasted.
  const SILENT_HEARTBEATS = 2;
  const SILENT_MARGIN_MS = 5000;
  // Refusals of an event stream that asking again does not change: the page stops and says why.
  const FINAL_REFUSALS = {
    401: "实时更新已停止: 访问令牌已失效, 请刷新页面并输入新令牌 (authorization: token no longer accepted)",
    403: "实时更新已停止: 无权查看 (forbidden)",
    404: "实时更新已停止: 服务器不认识该专项行动 (campaign: unknown campaign '{campaign}')",
  };
  // The wall-screen layout (app.css): charts fit their boxes instead of setting their height.
  const WALL = window.matchMedia("(min-width: 1500px) and (min-height: 800px)");

  const state = {
    city: { unitId: "", name: "本市" },
    campaigns: [],
    campaignsAt: 0,
    campaignId: "",
    campaign: null,
    asOf: "", // the moment asked about (as_of: what the hub knew then); "" for the present
    on: "", // the Beijing day whose end the coverage is asked at (on: event time); "" for now
    liveMode: "connecting",
    coverage: null,
    streamStopped: "", // why the event stream stopped for good, if it did
    badAddress: "", // what in the page's address could not be read, if anything
    scopePath: [], // [{unitId, name}] below the city
    area: "",
    from: "",
    to: "",
    shownWindow: null, // [from, to] as the date fields show them (Beijing days)
    granularity: "week",
    metric: "visits",
    kpis: null,
    bars: null,
    series: null,
    expanded: new Set(),
    visitsGroup: "", // the group whose 覆盖明细 is open, if any
    source: null,
    heardAt: 0, // when the event stream last said anything (hello, change, heartbeat)
    silent: false, // the stream was said lost for its silence, and has not been heard since
    heartbeatMs: 15000, // how often a quiet stream says heartbeat (its hello tells)
    version: 0,
  };
  window.duhubDashboard = state; // for people poking at the wall screen, and for tests

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const esc = (s) =>
    String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  // A name may hold bidi controls (the rules allow U+202E and its kin, format characters):
  // drawn bare, an override in it ran on to the end of its line, reversing the dates, counts
  // and names after it. In a <bdi> it ends with the name, which stays as it is in the DOM
  // (copied, it is the name); where no element can go (an option, a tooltip, a bar's label),
  // between FSI and PDI, added only to a name that holds such a control.
  const bdi = (name) => `<bdi>${esc(name)}</bdi>`;
  const BIDI_CONTROL = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/;
  const isolated = (name) => (BIDI_CONTROL.test(name) ? `\u2068${name}\u2069` : name);
  // To 0.1%, but only full shows 100.0% and only none 0.0% (2,000 of 2,001 is not full).
  const pct = (r) => {
    const tenths = Math.round(r * 1000);
    const shown = r > 0 && r < 1 ? Math.min(Math.max(tenths, 1), 999) : tenths;
    return `${(shown / 10).toFixed(1)}%`;
  };
  const num = (v) => Number(v || 0).toLocaleString("zh-CN");
  const tone = (r, targets) =>
    targets === 0 ? "none-needed" : r >= 1 ? "full" : r >= 0.6 ? "good" : r > 0 ? "low" : "zero";

  const BEIJING = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
  function beijing(date) {
    const p = Object.fromEntries(BEIJING.formatToParts(date).map((x) => [x.type, x.value]));
    return { date: `${p.year}-${p.month}-${p.day}`, time: `${p.hour}:${p.minute}`, sec: p.second };
  }
  const fmtMoment = (iso) => {
    const b = beijing(new Date(iso));
    return `${b.date} ${b.time}`;
  };
  // The period's dates are Beijing days, as every moment the page shows: a campaign Yichang
  // runs from 12-01 00:00 showed as from 11-30 (its UTC date).
  const beijingDate = (ms) => beijing(new Date(ms)).date;
  const fromBeijingDate = (value) => Date.parse(`${value}T00:00:00+08:00`);
  // The as-of field is Beijing time, as every moment the page shows.
  const asOfInput = (iso) => {
    const b = beijing(new Date(iso));
    return `${b.date}T${b.time}:${b.sec}`;
  };
  const fromAsOfInput = (value) => {
    const ms = Date.parse(`${value}+08:00`);
    return Number.isFinite(ms) ? new Date(ms).toISOString() : "";
  };
  // ?as_of= in the address: RFC 3339 with its offset, or without one Beijing time, as the
  // field shows it (a bare date: Beijing midnight). Date.parse read a time without an offset
  // in the browser's own zone, and any form it knew ("Dec 6 2026") its own way, so one link
  // showed other moments on other screens.
  const fromAddressAsOf = (text) => {
    const m = text.match(
      /^(\d{4}-\d\d-\d\d)(?:[Tt ](\d\d:\d\d(?::\d\d(?:[.,]\d{1,9})?)?))?([Zz]|[+-]\d\d:?\d\d)?$/,
    );
    if (!m) return "";
    const [, date, time, offset] = m;
    if (offset && !time) return "";
    const [y, mo, d] = date.split("-").map(Number);
    const day = new Date(Date.UTC(y, mo - 1, d)); // Date.parse took 02-30 for 03-02
    if (day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) return "";
    const clock = (time || "00:00:00").replace(",", ".").replace(/(\.\d{3})\d+$/, "$1");
    const zone = offset ? offset.toUpperCase().replace(/^([+-]\d\d)(\d\d)$/, "$1:$2") : "+08:00";
    const ms = Date.parse(`${date}T${clock}${zone}`);
    return Number.isFinite(ms) ? new Date(ms).toISOString() : "";
  };
  // ?on= in the address: a date, as the hub takes it (a moment would leave which day it
  // means to the reader); "" for anything else, 02-30 included.
  const fromAddressDay = (text) => {
    const m = text.match(/^(\d{4})-(\d\d)-(\d\d)$/);
    if (!m) return "";
    const [y, mo, d] = m.slice(1).map(Number);
    const day = new Date(Date.UTC(y, mo - 1, d));
    return day.getUTCMonth() === mo - 1 && day.getUTCDate() === d ? text : "";
  };
  // The end of a Beijing day: the coverage "on" it counts the visits before this moment.
  const dayEnd = (day) => fromBeijingDate(day) + DAY_MS;

  async function api(path, params = {}) {
    const url = new URL(path, document.baseURI);
    for (const [k, v] of Object.entries(params)) {
      if (v !== "" && v !== null && v !== undefined) url.searchParams.set(k, v);
    }
    try {
      return await send(url);
    } catch (err) {
      if (err.status === 401 && (await askToken())) return api(path, params);
      throw err;
    }
  }

  // One request to the hub: its JSON answer, or an Error saying why (with its status).
  async function send(url, init = {}) {
    let reply;
    try {
      reply = await fetch(url, { cache: "no-store", ...init });
    } catch {
      // The browser's own words ("Failed to fetch") are English, and say nothing of what next.
      throw new Error("无法连接看板服务，恢复连接后自动更新");
    }
    const body = await reply.json();
    if (!reply.ok) throw Object.assign(new Error(body.error || reply.statusText), { status: reply.status });
    return body;
  }

  // A hub with --tokens answers 401 until the page holds a token: ask for one and hand it to
  // the hub (api/session), which checks it and keeps it in an HttpOnly cookie that every
  // request (the event stream too) then carries. The page wrote the cookie itself before, and
  // any script of the origin could read the token. Cancel: show the error; a token the hub
  // refuses: show why. Requests refused together ask once.
  let asking = null;
  function askToken() {
    if (!asking) asking = signIn().finally(() => (asking = null));
    return asking;
  }

  async function signIn() {
    const token = window.prompt("访问令牌 access token (duhub certs token):");
    if (!token || !token.trim()) return false;
    await session("POST", { Authorization: `Bearer ${token.trim()}` }); // throws why if refused
    showForget(true);
    if (state.source) connect(); // reopen the event stream with the cookie
    return true;
  }

  // Sign in or out: a refusal is said, never answered by asking for a token again.
  function session(method, headers = {}) {
    return send(new URL("api/session", document.baseURI), { method, headers });
  }

  // Forget the token (the hub expires its cookie); the page then asks for one again.
  function showForget(shown) {
    $("#forget-token").hidden = !shown;
  }

  async function forgetToken() {
    try {
      await session("DELETE");
      location.reload();
    } catch (err) {
      showError(err);
    }
  }

  function showError(err) {
    const box = $("#error");
    // These stay said.
    err =
      err ||
      state.streamStopped ||
      state.badAddress ||
      state.badOn ||
      state.badCampaign ||
      state.badWindow;
    if (err) {
      box.textContent = `出错: ${err.message || err}`;
      box.hidden = false;
    } else {
      box.hidden = true;
    }
  }

  // ---- campaigns ---------------------------------------------------------------------------

  async function loadCampaigns() {
    // Ids, names and windows only: read every few seconds, and a campaign may name 100,000 targets.
    const reply = await api("api/campaigns", { omit_targets: "true" });
    state.campaigns = reply.campaigns;
    state.campaignsAt = Date.now();
    showAreas();
    const select = $("#campaign-select");
    const known = new Set($$("option", select).map((o) => o.value));
    const ids = state.campaigns.map((c) => c.campaignId);
    if (ids.length !== known.size || ids.some((id) => !known.has(id))) {
      select.innerHTML = state.campaigns
        .map(
          (c) =>
            `<option value="${esc(c.campaignId)}" title="${esc(c.campaignId)}">${esc(isolated(c.name))} · ${beijingDate(Date.parse(c.startsAt))}</option>`,
        )
        .join("");
      select.value = state.campaignId;
    }
  }

  // The campaign a page opens on: the latest begun (the list is in order of start), else the
  // first to come. The latest to start was a campaign launched for 2099, by a county too.
  // The city's campaigns first: one with a task force or city groups, which only the city's
  // node may launch. A county's own campaign, begun later, took the city's wall screen
  // (security review, 2026-12-07); it is still listed, and opened when it is the only one.
  const cityLed = (c) =>
    (c.groups || []).some((g) => g.tier === "TIER_TASK_FORCE" || g.tier === "TIER_CITY");

  function defaultCampaign(campaigns) {
    const begun = campaigns.filter((c) => Date.parse(c.startsAt) <= Date.now());
    const pool = begun.some(cityLed) ? begun.filter(cityLed) : begun;
    const chosen = pool.length ? pool[pool.length - 1] : campaigns[0];
    return chosen ? chosen.campaignId : null;
  }

  // The list of campaigns changes rarely: look again at most every few seconds after a change.
  let campaignsTimer = 0;
  function campaignsSoon() {
    if (campaignsTimer) return;
    const wait = state.campaignId
      ? Math.max(0, state.campaignsAt + CAMPAIGNS_EVERY_MS - Date.now())
      : 0;
    campaignsTimer = setTimeout(async () => {
      campaignsTimer = 0;
      try {
        await loadCampaigns();
        if (!state.campaignId && state.campaigns.length) {
          // The first campaign was launched while the page was up.
          await selectCampaign(defaultCampaign(state.campaigns));
        }
      } catch (err) {
        showError(err);
      }
    }, wait);
  }

  async function selectCampaign(id) {
    closeVisits(); // another campaign's groups
    state.campaignId = id;
    state.expanded.clear();
    const url = new URL(location.href);
    url.searchParams.set("campaign", id);
    history.replaceState(null, "", url);
    $("#campaign-select").value = id;
    // Its figures need none of its targets (98,714 of them took 8 s to come on a busy hub):
    // drawn from the list's entry, its groups without their targets, while those come; then
    // the groups are drawn again with their cells.
    const listed = state.campaigns.find((c) => c.campaignId === id);
    const whole = api(`api/campaigns/${encodeURIComponent(id)}`);
    const drawWhole = (campaign) => {
      if (state.campaignId !== id) return; // another was chosen meanwhile: its call draws it
      state.campaign = campaign;
      buildStructure();
      if (state.coverage) renderCoverage();
      else if (state.noCoverage) clearGroups();
    };
    state.coverage = null;
    state.noCoverage = "";
    const bare = listed && { ...listed, groups: listed.groups.map((g) => ({ ...g, targets: [] })) };
    state.campaign = bare || (await whole);
    if (state.campaignId !== id) return;
    resetWindow();
    buildStructure();
    connect();
    const withCells = bare ? whole.then(drawWhole) : null;
    await Promise.all([refreshNow({ coverage: true, stats: true }), withCells]);
  }

  function resetWindow() {
    const c = state.campaign;
    if (c) {
      state.from = c.startsAt;
      state.to = c.endsAt;
    } else {
      const year = Number(beijingDate(Date.now()).slice(0, 4));
      state.from = new Date(fromBeijingDate(`${year}-01-01`)).toISOString();
      state.to = new Date(fromBeijingDate(`${year + 1}-01-01`)).toISOString();
    }
    const days = (Date.parse(state.to) - Date.parse(state.from)) / DAY_MS;
    state.granularity = days <= 120 ? "week" : "month";
    showWindow();
  }

  // How many periods of a grain [from, to) touches (in UTC: fitting() shifts the window to
  // Beijing time; weeks start on Monday, and day 0, 1970-01-01, was a Thursday).
  function periodCount(grain, from, to) {
    const a = Math.floor(from / DAY_MS);
    const b = Math.floor((to - 1) / DAY_MS);
    if (grain === "day") return b - a + 1;
    if (grain === "week") return Math.floor((b + 3) / 7) - Math.floor((a + 3) / 7) + 1;
    const [x, y] = [new Date(from), new Date(to - 1)];
    return (y.getUTCFullYear() - x.getUTCFullYear()) * 12 + y.getUTCMonth() - x.getUTCMonth() + 1;
  }

  // The grain asked for, else the first coarser one the hub answers for the whole window: a
  // long window by day was refused ("group_by: more than 5000 periods"), and the figures of
  // the window before stayed up under the new dates.
  function fitting(grain) {
    const [from, to] = [Date.parse(state.from) + BEIJING_MS, Date.parse(state.to) + BEIJING_MS];
    const coarser = Object.keys(GRAIN).slice(Object.keys(GRAIN).indexOf(grain));
    return coarser.find((g) => periodCount(g, from, to) <= MAX_PERIODS) || "month";
  }

  function showWindow() {
    $("#from").value = beijingDate(Date.parse(state.from));
    $("#to").value = beijingDate(Date.parse(state.to) - 1);
    // What the fields say of the window: a date entered again as shown keeps its edge (a
    // window not on Beijing midnights, such as a campaign's from 00:00 UTC, stays itself).
    state.shownWindow = [$("#from").value, $("#to").value];
    // Chosen is said to assistive technology too (pressed), not by colour alone.
    $$("#granularity button").forEach((b) => chosen(b, b.dataset.g === state.granularity));
  }

  function chosen(button, on) {
    button.classList.toggle("on", on);
    button.setAttribute("aria-pressed", String(on));
  }

  // The areas to choose from: those named here, then any other a campaign is of (area is an
  // open key: a flood-control campaign's figures could not be read for its area here).
  function showAreas() {
    const select = $("#area");
    const known = new Set(AREAS.map(([k]) => k));
    const extra = [...new Set(state.campaigns.map((c) => c.area))].filter((a) => !known.has(a));
    const all = [...AREAS, ...extra.sort().map((a) => [a, a])];
    const keys = all.map(([k]) => k).join("\n");
    if (select.dataset.areas === keys) return; // unchanged: the open list stays as it is
    select.dataset.areas = keys;
    select.innerHTML = all.map(([k, v]) => `<option value="${esc(k)}">${esc(v)}</option>`).join("");
    select.value = state.area;
  }

  function areaLabel(area) {
    const found = AREAS.find(([k]) => k === area);
    return found ? found[1] : area;
  }

  function showMeta() {
    const c = state.campaign;
    $("#title").innerHTML = `${bdi(state.city.name)} · 督导全覆盖指挥看板`;
    if (!c) {
      $("#campaign-meta").textContent = "暂无督导活动：市级或县级部署督导活动后在此显示";
      return;
    }
    const count = (tier) => c.groups.filter((g) => g.tier === tier).length;
    const end = beijingDate(Date.parse(c.endsAt) - 1);
    const meta = $("#campaign-meta");
    const rest =
      ` · ${areaLabel(c.area)} · ${beijingDate(Date.parse(c.startsAt))} 至 ${end} · ` +
      `${count("TIER_TASK_FORCE")} 个工作专班 + ${count("TIER_CITY")} 个市本级督导组 + ` +
      `${count("TIER_COUNTY")} 个县市区督导组`;
    meta.innerHTML = bdi(c.name) + esc(rest);
    meta.title = isolated(c.name) + rest; // whole on hover where the header cuts it short
  }

  // ---- the 1+7+N structure: built once per campaign, coloured in place on every change ------

  function groupsOf(tier) {
    return state.campaign ? state.campaign.groups.filter((g) => g.tier === tier) : [];
  }

  function groupHead(g, middle = "", name = g.name) {
    return `<div class="group-head">
        <span class="name" title="${esc(g.name)}">${esc(name)}</span>
        <span class="middle">${middle}</span>
        <span class="count">— / —</span>
        <span class="ratio">—</span>
      </div>`;
  }

  // A group's progress bar opens its 覆盖明细 (which visit covered each target): a button, so
  // Tab reaches it and Enter or Space opens it, as a county's row or a KPI tile.
  // Beside it, once the group is full, when it became so: on a line of its own under the
  // group's figures it made each full group taller, and on the wall screen the last counties
  // and county groups went out of sight as the campaign neared full coverage.
  const groupBar = (g) =>
    `<div class="bar-line"><button type="button" class="bar-open" data-visits="${esc(g.groupId)}" title="查看覆盖明细"><span class="bar"><i></i></span></button><span class="full-at"></span></div>`;

  function buildStructure() {
    showMeta();
    const tf = groupsOf("TIER_TASK_FORCE");
    // No campaign has no "0+0" structure: its counts are "—", as its coverage's are.
    const c = state.campaign;
    $("#city-title .num").textContent = c ? `${tf.length}+${groupsOf("TIER_CITY").length}` : "—";
    $("#county-title .num").textContent = c ? String(groupsOf("TIER_COUNTY").length) : "—";
    const others = state.campaign ? state.campaign.groups.length - tf.length : 0;
    $("#task-force").innerHTML = tf
      .map(
        (g) => `<div class="tf" data-group="${esc(g.groupId)}"><span class="num">1</span>
          <b>${esc(g.name)}</b><span>统筹协调 ${others} 个督导组，不承担覆盖目标</span></div>`,
      )
      .join("");
    $("#city-groups").innerHTML = groupsOf("TIER_CITY")
      .map((g) => {
        const chips = g.targets
          .map(
            (t) =>
              `<span class="chip uncovered" data-unit="${esc(t.unitId)}" title="${esc(t.name)}">${esc(t.name)}</span>`,
          )
          .join("");
        return `<div class="group city" data-group="${esc(g.groupId)}">${groupHead(g, chips)}${groupBar(g)}</div>`;
      })
      .join("");
    const county = groupsOf("TIER_COUNTY");
    $("#county-groups").innerHTML = county.map(countyGroup).join("");
    drawMosaics();
    const sample = county.some((g) => g.targets.some((t) => t.sample));
    $("#sample-note").textContent = sample ? "乡镇、村(社区)为示例数据" : "";
    if (!state.campaign) {
      $("#uncovered-count").textContent = "—";
      delete $("#uncovered-count").dataset.tone;
      $("#city-groups").innerHTML = `<div class="empty">暂无督导活动</div>`;
      $("#uncovered").innerHTML = `<div class="empty">暂无督导活动</div>`;
    }
  }

  // A county group's targets, township by township: each township (a target itself or only
  // the parent of village targets) with its villages.
  function townships(g) {
    const blocks = new Map();
    const block = (id, name) => {
      if (!blocks.has(id)) blocks.set(id, { id, name, self: null, villages: [] });
      return blocks.get(id);
    };
    for (const t of g.targets) {
      if (t.level === "LEVEL_VILLAGE") block(t.parentId, t.parentName).villages.push(t);
      else block(t.unitId, t.name).self = t;
    }
    return Array.from(blocks.values());
  }

  // A county group of more targets than this draws its mosaic's cells on a canvas. An element
  // per target, 98,714 for the largest campaign, kept its page from showing for 5-16 s in
  // headless Chromium (2.4 s of it colouring them the first time) and busy at each change.
  const CELLS_AS_ELEMENTS_MAX = 500;
  const drawn = (g) => g.targets.length > CELLS_AS_ELEMENTS_MAX;

  function drawMosaics() {
    for (const el of $$("#county-groups .group[data-group]")) {
      const canvas = $(".mosaic canvas", el);
      if (!canvas) continue;
      const g = state.campaign.groups.find((x) => x.groupId === el.dataset.group);
      el.mosaic = canvasMosaic(canvas, g);
    }
  }

  // A group's cells on a canvas, as the elements would show them (app.css: .cell, .block):
  // township by township, each township's cell larger and outlined, coloured by coverage.
  function canvasMosaic(canvas, g) {
    const cells = [];
    for (const b of townships(g)) {
      [b.self, ...b.villages].filter(Boolean).forEach((t, i) => cells.push({ t, first: i === 0 }));
    }
    const index = new Map(cells.map((c, i) => [c.t.unitId, i]));
    const marks = cells.map(() => "uncovered");
    let boxes = []; // [x, y, size] of each cell, in CSS pixels
    const ctx = canvas.getContext("2d");

    function layout() {
      const root = getComputedStyle(document.documentElement);
      const rem = parseFloat(root.fontSize) || 16;
      const colour = (name) => root.getPropertyValue(name).trim();
      ctx.colours = {
        covered: colour("--covered"),
        uncovered: colour("--uncovered"),
        outside: colour("--muted"),
      };
      const width = Math.max(rem, canvas.closest(".middle").clientWidth);
      const [big, small, gap, blockGap] = [0.6 * rem, 0.45 * rem, 0.1 * rem, 0.3 * rem];
      const lineH = big + 0.12 * rem;
      let [x, y] = [1, 1]; // room for a township's outline
      boxes = cells.map((c) => {
        const size = c.t.level === "LEVEL_VILLAGE" ? small : big;
        if (c.first && x > 1) x += blockGap - gap;
        if (x + size + 1 > width && x > 1) [x, y] = [1, y + lineH];
        const box = [x, y + (big - size) / 2, size];
        x += size + gap;
        return box;
      });
      const height = y + big + 1;
      const scale = window.devicePixelRatio || 1;
      canvas.width = Math.ceil(width * scale);
      canvas.height = Math.ceil(height * scale);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
      ctx.setTransform(scale, 0, 0, scale, 0, 0);
      cells.forEach((_, i) => paint(i));
    }

    function paint(i) {
      const [x, y, size] = boxes[i];
      const township = cells[i].t.level !== "LEVEL_VILLAGE";
      // Square corners: rounded, 98,714 of them took seconds to rasterise.
      ctx.clearRect(x - 1, y - 1, size + 2, size + 2);
      if (marks[i] === "outside") {
        ctx.setLineDash([2, 2]);
        ctx.strokeStyle = ctx.colours.outside;
        ctx.lineWidth = 1;
        ctx.strokeRect(x + 0.5, y + 0.5, size - 1, size - 1);
        ctx.setLineDash([]);
        return;
      }
      ctx.fillStyle = ctx.colours[marks[i]];
      ctx.fillRect(x, y, size, size);
      if (township) {
        ctx.strokeStyle = "rgba(255, 255, 255, 0.6)";
        ctx.lineWidth = 1;
        ctx.strokeRect(x - 0.5, y - 0.5, size + 1, size + 1);
      }
    }

    // Named on hover, as each cell was by its title.
    canvas.addEventListener("mousemove", (e) => {
      const r = canvas.getBoundingClientRect();
      const [px, py] = [e.clientX - r.left, e.clientY - r.top];
      const i = boxes.findIndex(([x, y, s]) => px >= x - 1 && px <= x + s + 1 && py >= y - 1 && py <= y + s + 1);
      canvas.title = i >= 0 ? cells[i].t.name : "";
    });
    // For tests and people poking at the wall screen: where a target's cell is drawn.
    canvas.cellAt = (unitId) => boxes[index.get(unitId)];
    layout();
    return {
      layout,
      // Only a cell whose mark changed is drawn again.
      mark(markOf) {
        cells.forEach((c, i) => {
          const mark = markOf(c.t.unitId);
          if (marks[i] === mark) return;
          marks[i] = mark;
          paint(i);
        });
      },
      marks: () => new Map(cells.map((c, i) => [c.t.unitId, marks[i]])),
    };
  }

  function cell(t, extra) {
    const kind = t.level === "LEVEL_VILLAGE" ? "" : "township";
    return `<i class="cell ${kind} ${extra} uncovered" data-unit="${esc(t.unitId)}" title="${esc(t.name)}"></i>`;
  }

  function countyGroup(g) {
    // A large group's cells are drawn on a canvas once the page is laid out (drawMosaics).
    const mosaic = drawn(g)
      ? "<canvas></canvas>"
      : townships(g)
          .map(
            (b) =>
              `<span class="block">${b.self ? cell(b.self, "") : ""}${b.villages
                .map((v) => cell(v, ""))
                .join("")}</span>`,
          )
          .join("");
    // Its detail (a chip per target) is built when first opened: built for every group up
    // front, a 100,000-target campaign's page held 200,000 elements, most never shown.
    const open = state.expanded.has(g.groupId);
    const detail = open ? detailOf(g, () => "uncovered") : "";
    return `<div class="group cg${open ? " open" : ""}" data-group="${esc(g.groupId)}">
        <button type="button" class="toggle" aria-expanded="${open}">${groupHead(
          g,
          `<span class="mosaic${drawn(g) ? " drawn" : ""}" aria-hidden="true">${mosaic}</span>`,
          g.name.replace(/督导组$/, ""),
        )}</button>${groupBar(g)}
        <div class="detail"${open ? ' data-built="1"' : " hidden"}>${detail}</div>
      </div>`;
  }

  // A county group's chips, township by township, each marked as `markOf` its unit id says.
  function detailOf(g, markOf) {
    const chip = (t, kind) =>
      `<span class="chip${kind} ${markOf(t.unitId)}" data-unit="${esc(t.unitId)}">${esc(t.name)}</span>`;
    return townships(g)
      .map(
        (b) => `<div class="tw">${
          b.self ? chip(b.self, "") : `<span class="chip plain">${esc(b.name)}</span>`
        }<span class="villages">${b.villages.map((v) => chip(v, " small")).join("")}</span></div>`,
      )
      .join("");
  }

  function buildDetail(group) {
    const detail = $(".detail", group);
    if (detail.dataset.built) return;
    const g = state.campaign.groups.find((x) => x.groupId === group.dataset.group);
    // Marked as its mosaic's cells are now: the next change repaints only what changed.
    const marks = group.mosaic
      ? group.mosaic.marks()
      : new Map(unitsOf(group).map(([id, unit]) => [id, unit.painted || "uncovered"]));
    detail.innerHTML = detailOf(g, (id) => marks.get(id) || "uncovered");
    detail.dataset.built = "1";
    group.targetUnits = null; // gathered again, its chips with them
  }

  // A group's targets on the page as [unit id, element], gathered once (again once its detail
  // is built): asked of the document at each change, with 200,000 of them, it was most of a
  // repaint.
  function unitsOf(group) {
    if (!group.targetUnits) {
      group.targetUnits = $$("[data-unit]", group).map((u) => {
        u.painted = u.painted || MARKS.find((m) => u.classList.contains(m)); // as built
        return [u.dataset.unit, u];
      });
    }
    return group.targetUnits;
  }

  // Only a target whose mark changed is touched, in one step: each of a 100,000-target
  // campaign's, three times at each change of coverage, blocked the page 0.3-0.6 s (4.4 s
  // the first time).
  function markUnit(unit, mark) {
    if (unit.painted === mark) return;
    if (!unit.classList.replace(unit.painted, mark)) unit.classList.add(mark);
    unit.painted = mark;
  }

  function paintGroup(el, g) {
    $(".count", el).textContent = `${num(g.covered)} / ${num(g.targets)}`;
    $(".ratio", el).textContent = g.targets ? pct(g.ratio) : "—";
    const at = $(".full-at", el);
    at.textContent = g.fullAt ? `✓ ${fmtMoment(g.fullAt).slice(5)}` : "";
    at.title = g.fullAt ? `全覆盖于 ${fmtMoment(g.fullAt)}（北京时间）` : "";
    const toggle = $("button.toggle", el);
    if (toggle) {
      // Its name from its content (hundreds of cells) came out as the bare county name.
      const full = g.fullAt ? `，${at.title}` : "";
      toggle.setAttribute(
        "aria-label",
        `${g.name}：已覆盖 ${num(g.covered)} / ${num(g.targets)}，${$(".ratio", el).textContent}${full}`,
      );
    }
    const bar = $(".bar i", el);
    bar.style.width = `${g.targets ? g.ratio * 100 : 0}%`;
    $(".bar-open", el).setAttribute("aria-label", `${g.name} 覆盖明细：已覆盖 ${num(g.covered)} / ${num(g.targets)}`);
    el.dataset.tone = tone(g.ratio, g.targets);
    // A target outside the caller's scope counts for neither side: not painted covered.
    const missing = new Set(g.uncoveredUnitIds);
    const covered = new Set(g.coveredUnitIds);
    const markOf = (id) => (missing.has(id) ? "uncovered" : covered.has(id) ? "covered" : "outside");
    for (const [id, unit] of unitsOf(el)) markUnit(unit, markOf(id));
    if (el.mosaic) el.mosaic.mark(markOf);
  }

  // The overall card says which day's coverage the page shows: on a day past, every
  // coverage figure below it is that day's, not the present's.
  function showOnDay() {
    const label = $("#overall .card-label");
    label.textContent = state.on ? `总体覆盖率 · 至 ${state.on} 24:00` : "总体覆盖率";
    label.title = state.on
      ? `按督导发生日期回看：只计北京时间 ${state.on} 24:00 前发生的督导`
      : "";
  }

  function clearCoverage(err, asOf) {
    const why =
      err.status === 404 && asOf
        ? `截至 ${asOfInput(asOf).replace("T", " ")}（北京时间）该督导活动尚未发布`
        : "无覆盖数据";
    err.message = `${why} (${err.message})`;
    showOnDay();
    $("#overall-ratio").textContent = "—";
    $("#overall-count").textContent = why;
    $("#overall").dataset.tone = "none-needed";
    $("#full-badge").textContent = "—";
    $("#full-badge").classList.remove("full");
    $("#tiers").innerHTML = "";
    $("#counties-num").textContent = "—";
    $("#counties").innerHTML = "";
    $("#uncovered-count").textContent = "—";
    delete $("#uncovered-count").dataset.tone;
    $("#uncovered").innerHTML = `<div class="empty">${esc(why)}</div>`;
    state.noCoverage = why;
    clearGroups();
  }

  // Each group as having no coverage to show, for the reason state.noCoverage says.
  function clearGroups() {
    const why = state.noCoverage;
    for (const el of $$(".group[data-group]")) {
      $(".count", el).textContent = "— / —";
      $(".ratio", el).textContent = "—";
      $(".full-at", el).textContent = "";
      $(".bar i", el).style.width = "0%";
      el.dataset.tone = "none-needed";
      const toggle = $("button.toggle", el);
      if (toggle) toggle.setAttribute("aria-label", `${$(".name", el).title}：${why}`);
      $(".bar-open", el).setAttribute("aria-label", `${$(".name", el).title} 覆盖明细：${why}`);
      for (const [, unit] of unitsOf(el)) markUnit(unit, "outside");
      if (el.mosaic) el.mosaic.mark(() => "outside");
    }
  }

  // A bar's width is set from its data-width (a percentage) once it is in the page: the
  // page's Content-Security-Policy refuses style="…" in markup.
  function widths(el) {
    for (const i of el.querySelectorAll("i[data-width]")) i.style.width = `${i.dataset.width}%`;
  }

  function renderCoverage() {
    const cov = state.coverage;
    if (!cov) return;
    state.noCoverage = "";
    showOnDay();
    const t = cov.totals;
    $("#overall-ratio").textContent = pct(t.ratio);
    $("#overall-count").textContent = `已覆盖 ${num(t.covered)} / ${num(t.targets)} 个目标`;
    $("#overall").dataset.tone = tone(t.ratio, t.targets);
    const badge = $("#full-badge");
    // "Not yet" of a campaign whose window has ended read as if it still ran. Ended by the
    // moment asked about: one still running then had not yet failed (an audit of a day of it).
    // On a day, the moment shown is its end (or, asked as of earlier, that moment).
    const known = state.asOf ? Date.parse(state.asOf) : Date.now();
    const at = state.on ? Math.min(known, dayEnd(state.on)) : known;
    const ended = state.campaign && Date.parse(state.campaign.endsAt) <= at;
    badge.textContent = cov.full ? "已实现督导全覆盖" : ended ? "未实现全覆盖" : "尚未全覆盖";
    badge.classList.toggle("full", cov.full);

    $("#tiers").innerHTML = cov.tiers
      .map((x) => {
        const label = TIERS[x.tier] || x.tier;
        const groups = groupsOf(x.tier).length;
        // The task force coordinates and has no targets; another tier without targets is
        // one this campaign has no groups (or, for a scoped page, no targets) in.
        const body =
          x.tier === "TIER_TASK_FORCE" && groups === 0
            ? `<div class="big small-big">—</div><div class="card-foot">本活动未设工作专班</div>`
            : x.tier === "TIER_TASK_FORCE"
            ? `<div class="big small-big">统筹协调</div><div class="card-foot">${groups} 个工作专班，统筹 ${
                state.campaign ? state.campaign.groups.length - groups : 0
              } 个督导组</div>`
            : x.targets === 0
              ? `<div class="big small-big">—</div><div class="card-foot"><span class="count">无督导目标</span>
               <span>${groups} 个督导组</span></div>`
              : `<div class="big">${pct(x.ratio)}</div>
               <div class="card-foot"><span class="count">${num(x.covered)} / ${num(x.targets)}</span>
               <span>${groups} 个督导组</span></div>
               <div class="bar"><i data-width="${x.ratio * 100}"></i></div>`;
        return `<div class="card tier" data-tier="${x.tier}" data-tone="${tone(x.ratio, x.targets)}">
          <div class="card-label"><span class="num">${groups}</span>${label}</div>${body}</div>`;
      })
      .join("");

    widths($("#tiers"));

    for (const g of cov.groups) {
      const el = document.querySelector(`[data-group="${CSS.escape(g.groupId)}"]`);
      if (el && el.classList.contains("group")) paintGroup(el, g);
    }

    $("#counties-num").textContent = String(cov.counties.length);
    $("#counties").innerHTML = cov.counties
      .map(
        (c) => `<button type="button" class="county" data-county="${esc(c.unitId)}"
            data-tone="${tone(c.ratio, c.targets)}" title="查看${esc(isolated(c.name))}的统计">
          <span class="name">${esc(c.name)}</span>
          <span class="bar"><i data-width="${c.ratio * 100}"></i></span>
          <span class="count">${num(c.covered)} / ${num(c.targets)}</span>
          <span class="ratio">${pct(c.ratio)}</span>
          <span class="full-at"${c.fullAt ? ` title="${fmtMoment(c.fullAt)}（北京时间）"` : ""}>${
            c.fullAt ? fmtMoment(c.fullAt).slice(5) : "未全覆盖"
          }</span>
        </button>`,
      )
      .join("");

    widths($("#counties"));

    // Counted by their ids: the answer names only the first MAX_LISTED of each group.
    const open = cov.groups.filter((g) => g.uncoveredUnitIds.length);
    const total = open.reduce((n, g) => n + g.uncoveredUnitIds.length, 0);
    // Red only while something is left to cover: a red "0" beside 全部目标均已覆盖 read as an alarm.
    $("#uncovered-count").textContent = num(total);
    $("#uncovered-count").dataset.tone = total ? "open" : "none";
    if (!open.length) {
      $("#uncovered").innerHTML =
        `<div class="empty">${state.campaign ? "全部目标均已覆盖" : "暂无督导活动"}</div>`;
    } else {
      showUncovered(open);
    }
  }

  // The units not covered yet, group by group. Only a group whose list changed is drawn again:
  // all 14 lists of 150 names of a 98,714-target campaign, drawn anew at each change of
  // coverage, kept the page busy most of a second.
  function showUncovered(open) {
    const box = $("#uncovered");
    const shown = $$(".ugroup", box);
    const kept = new Map(shown.map((el) => [el.dataset.groupUncovered, el]));
    const lists = open.map((g) => {
      const html = uncoveredList(g);
      const el = kept.get(g.groupId);
      if (el && el.drawn === html) return el;
      const made = document.createElement("div");
      made.className = "ugroup";
      made.dataset.groupUncovered = g.groupId;
      made.innerHTML = html;
      made.drawn = html;
      return made;
    });
    // The same groups in the same order: each changed list is swapped in its place.
    const same =
      shown.length === open.length &&
      shown.every((el, i) => el.dataset.groupUncovered === open[i].groupId);
    if (!same) box.replaceChildren(...lists);
    else shown.forEach((el, i) => el !== lists[i] && el.replaceWith(lists[i]));
  }

  function uncoveredList(g) {
    return `<h4>${bdi(g.name)} <span class="count">${num(g.uncoveredUnitIds.length)}</span></h4>
          <ul>${g.uncoveredUnits
            .slice(0, MAX_LISTED)
            .map(
              (u) =>
                `<li data-unit="${esc(u.unitId)}" title="${esc(isolated(u.name))}（${esc(isolated(u.parentName))}）"><b>${bdi(u.name)}</b><span>${bdi(u.parentName)}</span></li>`,
            )
            .join("")}${
            g.uncoveredUnitIds.length > MAX_LISTED
              ? `<li class="more">另有 ${num(g.uncoveredUnitIds.length - MAX_LISTED)} 个未列出…</li>`
              : ""
          }</ul>`;
  }

  // ---- 覆盖明细: the visit that first covered each covered target of one group ----------------

  // Listed at most: the rest are counted ("另有 N 个…"), as the uncovered list does.
  const MAX_VISITS = 200;
  let visitsAsked = 0; // the latest request's number: an answer overtaken is not drawn

  function openVisits(groupId) {
    const g = state.campaign && state.campaign.groups.find((x) => x.groupId === groupId);
    if (!g) return;
    state.visitsGroup = groupId;
    $("#visits-group").textContent = g.name;
    $("#visits-count").textContent = "已覆盖 — / —";
    showVisitRows(`<li class="empty">正在加载…</li>`);
    const dialog = $("#visits");
    if (!dialog.open) dialog.showModal(); // Esc closes it; the page behind takes no focus
    loadVisits();
  }

  function closeVisits() {
    if ($("#visits").open) $("#visits").close();
  }

  // Closed (Esc, ×, the backdrop, another campaign): the focus goes back to the bar it was
  // opened from, not to the page's top.
  function visitsClosed() {
    const opener = $(`[data-visits="${CSS.escape(state.visitsGroup)}"]`);
    state.visitsGroup = "";
    visitsAsked += 1;
    if (opener) opener.focus({ preventScroll: true });
  }

  // Asked as the coverage is (the caller's scope, 截至 and 覆盖进度日期), so it lists the
  // targets the group's figure counts.
  async function loadVisits() {
    const ticket = ++visitsAsked;
    const on = state.on;
    let reply;
    try {
      reply = await api(`api/campaigns/${encodeURIComponent(state.campaignId)}/coverage/visits`, {
        group: state.visitsGroup,
        as_of: state.asOf,
        on,
        time_zone: on ? TIME_ZONE : "",
        limit: MAX_VISITS,
      });
    } catch (err) {
      reply = { error: err };
    }
    if (ticket === visitsAsked) renderVisits(reply);
  }

  function renderVisits(reply) {
    $("#visits-when").textContent = visitsMoment();
    if (reply.error) {
      $("#visits-count").textContent = "已覆盖 — / —";
      showVisitRows(`<li class="empty">${esc(`出错: ${reply.error.message}`)}</li>`);
      return;
    }
    $("#visits-count").textContent = `已覆盖 ${num(reply.covered)} / ${num(reply.targets)}`;
    const rest = reply.covered - reply.visits.length;
    const more = rest > 0 ? `<li class="more">另有 ${num(rest)} 个已覆盖单位未列出…</li>` : "";
    const none = `<li class="empty">尚无已覆盖单位</li>`;
    showVisitRows(reply.visits.length ? reply.visits.map(visitRow).join("") + more : none);
  }

  // Drawn again only when it changed: the list keeps its scroll at each change of coverage.
  function showVisitRows(html) {
    const list = $("#visits-list");
    if (list.drawn === html) return;
    list.innerHTML = html;
    list.drawn = html;
  }

  // Which coverage the list is of, when it is not the present's.
  function visitsMoment() {
    const on = state.on ? `至 ${state.on} 24:00（按督导发生日期）` : "";
    const asOf = state.asOf ? `截至 ${asOfInput(state.asOf).replace("T", " ")}` : "";
    return [on, asOf].filter(Boolean).join(" · ");
  }

  // A target, when it was first covered (the visit's event time) and by which event. An event
  // id is empty where the read model cannot tell which visit it was (README, Lineage).
  function visitRow(v) {
    const name = v.unitName || v.unitId;
    const event = v.eventId
      ? `<small title="${esc(`来源 ${v.source} · 序号 ${v.seq} · 事件 ${v.eventId}`)}">${esc(v.source)} · ${esc(v.eventId)}</small>`
      : `<small title="旧读模型未记录是哪次督导，重放后可见">事件未记录</small>`;
    return `<li data-unit="${esc(v.unitId)}"><b title="${esc(isolated(name))}">${bdi(name)}</b><time datetime="${esc(v.occurredAt)}">${fmtMoment(v.occurredAt)}</time>${event}</li>`;
  }

  // ---- statistics ---------------------------------------------------------------------------

  const depthOf = (path) => (LEVEL_DEPTH[state.city.level] || 0) + path.length;

  function scopeId() {
    const p = state.scopePath;
    return p.length ? p[p.length - 1].unitId : "";
  }

  function statParams(extra) {
    return {
      metric: METRICS.map(([m]) => m).join(","),
      scope: scopeId(),
      area: state.area,
      from: state.from,
      to: state.to,
      as_of: state.asOf,
      ...extra,
    };
  }

  async function loadStatistics() {
    const leaf = depthOf(state.scopePath) > MAX_DRILL; // a village: nothing below to chart
    const [whole, series] = await Promise.all([
      api("api/statistics", statParams(leaf ? {} : { group_by: "unit" })),
      api("api/statistics", statParams({ group_by: state.granularity, time_zone: TIME_ZONE })),
    ]);
    if (leaf) {
      return { kpis: whole.rows[0] ? whole.rows[0].values : {}, bars: [], series: series.rows };
    }
    // The figures above the bars and the bars themselves come from one answer, of one
    // moment: asked apart, a change between the two answers showed in the scope's own bar.
    const own = whole.own || { values: {} };
    const kpis = {};
    for (const [m] of METRICS) {
      kpis[m] = [own, ...whole.rows].reduce((sum, r) => sum + (r.values[m] || 0), 0);
    }
    return { kpis, bars: withOwnBar(own, whole.rows), series: series.rows };
  }

  // The scope's own events (a visit to a county's seat itself) are in none of its children's
  // rows: they get a bar of their own, not to be drilled into, so the bars add up to the
  // figures above them.
  function withOwnBar(own, rows) {
    if (!rows.length) return rows; // no unit below: its figures are all its own, shown above
    if (!METRICS.some(([m]) => own.values[m] > 0)) return rows;
    const name = `${isolated(own.name)}本级`;
    return [{ key: own.key, name, values: own.values, own: true }, ...rows];
  }

  // What the statistics were asked for. An answer that comes after the choice changed is not
  // drawn under the new choice's crumbs and titles: the change scheduled a round of its own.
  const selection = () =>
    JSON.stringify([
      state.campaignId,
      state.scopePath.map((p) => p.unitId),
      state.area,
      state.from,
      state.to,
      state.granularity,
      state.asOf,
    ]);

  function renderStatistics() {
    const crumbs = [{ unitId: "", name: state.city.name }, ...state.scopePath];
    $("#crumbs").innerHTML = crumbs
      .map((c, i) =>
        i === crumbs.length - 1
          ? `<span class="here">${esc(c.name)}</span>`
          : `<button type="button" data-depth="${i}">${esc(c.name)}</button><span class="sep">›</span>`,
      )
      .join("");
    const values = state.kpis || {};
    $("#kpis").innerHTML = METRICS.map(
      ([m, label]) => `<button type="button" class="kpi${m === state.metric ? " on" : ""}" data-metric="${m}" aria-pressed="${m === state.metric}">
        <span class="value">${num(values[m])}</span><span class="label">${label}</span></button>`,
    ).join("");
    renderCharts();
  }

  function renderCharts() {
    const label = LABEL[state.metric];
    const depth = depthOf(state.scopePath);
    $("#bars-title").textContent =
      depth > MAX_DRILL ? `${label} · 村(社区)无下级单位` : `${label} · 按${CHILDREN[depth]}${depth < MAX_DRILL ? "（点击下钻）" : ""}`;
    $("#series-title").textContent = `${label} · ${GRAIN[state.granularity]}（北京时间）`;
    drawBars($("#bars"), state.bars || [], state.metric, depth < MAX_DRILL);
    drawSeries($("#series"), state.series || [], state.metric);
    // A chart is an image to assistive technology: it says what it shows, figure by figure.
    const said = (rows, name) => rows.map((r) => `${name(r)} ${num(r.values[state.metric])}`);
    const bars = said(state.bars || [], (r) => r.name || r.key);
    const series = said(state.series || [], (r) => r.key);
    describe("#bars", `${$("#bars-title").textContent}：${bars.join("，")}`);
    describe("#series", `${$("#series-title").textContent}：${series.join("，")}`);
  }

  function describe(sel, text) {
    const svg = $(`${sel} svg`);
    if (svg) svg.setAttribute("aria-label", text);
  }

  // A chart of bars to drill into is a group of buttons; any other, an image.
  const SVG = (w, h, inner, role = "img") =>
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="${role}">${inner}</svg>`;

  function niceStep(x) {
    if (x <= 1) return 1;
    const p = 10 ** Math.floor(Math.log10(x));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  function drawBars(el, rows, metric, drillable) {
    if (!rows.length) {
      el.innerHTML = `<div class="empty">无下级单位</div>`;
      return;
    }
    const fs = parseFloat(getComputedStyle(el).fontSize) || 16;
    const W = Math.max(240, el.clientWidth);
    const room = WALL.matches ? el.clientHeight : rows.length * fs * 1.8;
    const rowH = Math.max(fs * 1.25, Math.min(fs * 2.6, room / rows.length));
    const H = Math.ceil(rowH * rows.length);
    const longest = Math.max(...rows.map((r) => (r.name || r.key).length));
    const labelW = Math.min(W * 0.38, fs * (longest + 0.8));
    const fits = Math.max(2, Math.floor((labelW - fs * 0.5) / fs)); // characters, CJK-wide
    const valueW = fs * 4.5;
    const plotW = Math.max(20, W - labelW - valueW);
    const max = Math.max(1, ...rows.map((r) => r.values[metric] || 0));
    const bars = rows
      .map((r, i) => {
        const v = r.values[metric] || 0;
        const w = v ? Math.max(3, (v / max) * plotW) : 0;
        const y = i * rowH;
        const name = r.name || r.key;
        // A name longer than its room keeps its start (anchored at its end, it lost it).
        const shown = name.length > fits ? `${name.slice(0, fits - 1)}…` : name;
        const drill = drillable && !r.own; // the scope's own events: nothing below to show
        const button = drill
          ? ` tabindex="0" role="button" aria-label="${esc(name)}：${num(v)}，下钻"`
          : "";
        return `<g class="bar${drill ? " drill" : ""}${r.own ? " own" : ""}" data-key="${esc(r.key)}" data-name="${esc(name)}" data-value="${v}"${button}>
          <title>${esc(isolated(name))}：${num(v)}</title>
          <rect class="hit" x="0" y="${y}" width="${W}" height="${rowH}"></rect>
          <text class="label" x="${labelW - fs * 0.5}" y="${y + rowH / 2}">${esc(shown)}</text>
          <rect class="fill" x="${labelW}" y="${y + rowH * 0.2}" width="${w}" height="${rowH * 0.6}" rx="3"></rect>
          <text class="val" x="${labelW + w + fs * 0.4}" y="${y + rowH / 2}">${num(v)}</text>
        </g>`;
      })
      .join("");
    // Redrawn on every change: its callers keep the focus (keepingFocus, by data-key).
    el.innerHTML = SVG(W, H, bars, drillable ? "group" : "img");
  }

  // A day's or week's label is its month and day; across a new year with its year too: a
  // window of several years labelled 11-01 over and over, the years not told apart.
  function periodLabel(key, years) {
    if (state.granularity === "month") return key.slice(0, 7);
    return years ? key : key.slice(5);
  }

  function drawSeries(el, rows, metric) {
    if (!rows.length) {
      el.innerHTML = `<div class="empty">此期间无数据</div>`;
      return;
    }
    const fs = parseFloat(getComputedStyle(el).fontSize) || 16;
    const W = Math.max(240, el.clientWidth);
    const H = Math.max(fs * 9, el.clientHeight || fs * 12);
    const values = rows.map((r) => r.values[metric] || 0);
    const top = Math.max(...values);
    const step = niceStep(top / 4);
    const max = Math.max(step, Math.ceil(top / step) * step);
    const padL = fs * (String(max).length * 0.6 + 1.2);
    const padR = fs * 0.6;
    const padT = fs * 1.4;
    const padB = fs * 1.8;
    const plotW = W - padL - padR;
    const plotH = H - padT - padB;
    const colW = plotW / rows.length;
    const y = (v) => padT + plotH - (v / max) * plotH;
    let out = "";
    for (let v = 0; v <= max; v += step) {
      out += `<line class="grid" x1="${padL}" x2="${W - padR}" y1="${y(v)}" y2="${y(v)}"></line>
        <text class="tick" x="${padL - fs * 0.4}" y="${y(v)}">${num(v)}</text>`;
    }
    const years = rows[0].key.slice(0, 4) !== rows[rows.length - 1].key.slice(0, 4);
    const labelEvery = Math.max(1, Math.ceil((fs * (years ? 5.6 : 3.4)) / colW));
    rows.forEach((r, i) => {
      const v = values[i];
      const x = padL + i * colW;
      const bw = Math.max(2, colW * 0.68);
      out += `<g class="col" data-key="${esc(r.key)}" data-value="${v}">
        <title>${esc(r.key)}：${num(v)}</title>
        <rect class="fill" x="${x + (colW - bw) / 2}" y="${y(v)}" width="${bw}" height="${padT + plotH - y(v)}" rx="2"></rect>
        ${v && rows.length <= 40 ? `<text class="val" x="${x + colW / 2}" y="${y(v) - fs * 0.35}">${num(v)}</text>` : ""}
        ${i % labelEvery === 0 ? `<text class="xlabel" x="${x + colW / 2}" y="${H - fs * 0.45}">${esc(periodLabel(r.key, years))}</text>` : ""}
      </g>`;
    });
    el.innerHTML = SVG(W, H, out);
  }

  // ---- refreshing: coalesced, so a burst of changes costs one round of requests -------------

  let running = null;
  let pending = null;

  function schedule(what) {
    pending = {
      coverage: Boolean((pending && pending.coverage) || what.coverage),
      stats: Boolean((pending && pending.stats) || what.stats),
    };
    if (!running) running = drain();
    return running;
  }

  async function drain() {
    try {
      while (pending) {
        const what = pending;
        pending = null;
        try {
          await refreshOnce(what);
          showError(null);
        } catch (err) {
          showError(err);
        }
      }
    } finally {
      running = null;
    }
  }

  const refreshNow = (what) => schedule(what);

  // A click is a press and a release on one element. On a live campaign the bars, counties
  // and crumbs are drawn anew every second or so, and a redraw between the two lost the click:
  // a round waits to draw until the pointer is released (and its click handled), a while at most.
  const HOLD_MAX_MS = 1500;
  let released = null;
  let release = () => {};
  document.addEventListener(
    "pointerdown",
    () => {
      if (!released) released = new Promise((resolve) => (release = resolve));
    },
    true,
  );
  const onRelease = () => {
    if (!released) return;
    released = null;
    setTimeout(release, 0); // after the click this release makes
  };
  document.addEventListener("pointerup", onRelease, true);
  document.addEventListener("pointercancel", onRelease, true);
  const untilReleased = () =>
    released && Promise.race([released, new Promise((r) => setTimeout(r, HOLD_MAX_MS))]);

  // A redraw replaces the element the keyboard's focus was on (a county row, a KPI tile, a
  // crumb): focus fell to <body>, every second or so on a live campaign, and Tab began again
  // at the page's top. The element is found again by the attribute that names it.
  const FOCUS_KEYS = ["data-county", "data-metric", "data-depth", "data-key", "data-unit", "data-visits"];
  function keepingFocus(draw) {
    const was = document.activeElement;
    const key = was && was !== document.body && FOCUS_KEYS.find((k) => was.hasAttribute(k));
    const value = key ? was.getAttribute(key) : null;
    const where = key ? was.parentElement && was.parentElement.closest("[id]") : null;
    draw();
    if (!key || document.body.contains(was) || !where) return;
    const again = where.querySelector(`[${key}="${CSS.escape(value)}"]`);
    if (again) again.focus({ preventScroll: true });
  }

  async function refreshOnce(what) {
    const campaignId = state.campaignId;
    const asOf = state.asOf;
    const on = state.on;
    const asked = selection();
    // Coverage refused (a campaign not yet launched at the moment asked about, one the hub
    // does not know): its figures are taken down and the statistics still drawn. Left up,
    // they were the present's under "历史 · 截至" that moment.
    const refused = (err) => {
      if (!(err.status >= 400 && err.status < 500)) throw err;
      return { refused: err };
    };
    const [cov, stats] = await Promise.all([
      what.coverage && campaignId
        ? api(`api/campaigns/${encodeURIComponent(campaignId)}/coverage`, {
            as_of: asOf,
            // A day's end in Beijing time, as the field shows it.
            on,
            time_zone: on ? TIME_ZONE : "",
            // Named only as many as listed: all of a 100,000-target campaign's were 8.6 MB.
            uncovered_named: MAX_LISTED,
          }).catch(refused)
        : null,
      what.stats ? loadStatistics() : null,
    ]);
    await untilReleased();
    campaignsSoon();
    if (cov && campaignId === state.campaignId && asOf === state.asOf && on === state.on) {
      state.coverage = cov.refused ? null : cov;
      if (cov.refused) keepingFocus(() => clearCoverage(cov.refused, asOf));
      else keepingFocus(renderCoverage);
      if (state.visitsGroup) loadVisits(); // its list follows the coverage, as every figure
    }
    if (stats && asked === selection()) {
      Object.assign(state, stats);
      keepingFocus(renderStatistics);
    }
    const now = beijing(new Date());
    $("#updated").textContent = `更新于 ${now.time}:${now.sec}`;
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    document.body.dataset.version = String(state.version);
    if (cov && cov.refused) throw cov.refused;
  }

  // ---- live: the server says something changed; refetch what did ----------------------------

  function setLive(mode) {
    state.liveMode = mode;
    // Asked about a moment, the page is connected but not live: it says which moment.
    const past = Boolean(state.asOf) && mode === "live";
    $("#live").dataset.state = past ? "history" : mode;
    // The figures on the page are dimmed while the hub is away: in full colour they passed
    // for live ones with only the small "重新连接中" to say otherwise.
    document.body.dataset.live = mode;
    const text = { live: "实时", connecting: "连接中", lost: "重新连接中", stopped: "已停止" };
    $("#live-text").textContent = past
      ? `历史 · 截至 ${asOfInput(state.asOf).replace("T", " ")}（北京时间）`
      : text[mode];
  }

  // A choice kept in the address, so a reload or a link shared shows the same; "" drops it.
  function keepInAddress(name, value) {
    const url = new URL(location.href);
    if (value) url.searchParams.set(name, value);
    else url.searchParams.delete(name);
    history.replaceState(null, "", url);
  }

  // As of a moment (?as_of= in the address, or the field): every figure is what the hub knew
  // then, as `duhub query … --as-of` answers; cleared, the page is live again.
  function setAsOf(iso) {
    state.asOf = iso;
    state.badAddress = "";
    keepInAddress("as_of", iso);
    $("#as-of").value = iso ? asOfInput(iso) : "";
    $("#as-of-now").hidden = !iso;
    setLive(state.liveMode);
  }

  // The coverage on a day (?on= in the address, or the field): only the visits that took
  // place before its end (Beijing time) count, as `duhub query coverage --on` answers; still
  // live, a visit of that day recorded late counts when it comes. The statistics keep their
  // own window (自/至). Cleared, the coverage is up to now again.
  function setOn(day) {
    state.on = day;
    state.badOn = "";
    keepInAddress("on", day);
    $("#on").value = day;
    $("#on-now").hidden = !day;
    $("#on-picker").classList.toggle("set", Boolean(day));
  }

  // The status an event stream's URL answers now: EventSource does not tell why it was
  // refused. HEAD is checked as GET is (the caller, the campaign) but holds no stream, so a
  // stream refused at --max-streams answers 200 here. 0: the hub did not answer.
  async function streamStatus(url) {
    try {
      return (await fetch(url, { method: "HEAD", cache: "no-store" })).status;
    } catch {
      return 0;
    }
  }

  function connect() {
    if (state.source) state.source.close();
    state.streamStopped = "";
    const url = new URL("api/events", document.baseURI);
    if (state.campaignId) url.searchParams.set("campaign", state.campaignId);
    const source = new EventSource(url);
    state.source = source;
    setLive("connecting");
    const heard = () => (state.heardAt = Date.now());
    source.onopen = () => {
      heard();
      setLive("live");
    };
    source.addEventListener("heartbeat", heard);
    source.onerror = async () => {
      setLive("lost");
      // A network error is retried by the browser; an answer other than 200 closes the
      // source for good. 503 (the server's streams are at --max-streams) may pass: open it
      // again later. 401, 403 and 404 (a revoked token, an unknown campaign) do not: asked
      // every 5 s for ever before, the page now stops and says why.
      if (source.readyState !== EventSource.CLOSED) return;
      const status = await streamStatus(url);
      if (state.source !== source) return;
      const final = FINAL_REFUSALS[status];
      if (final) {
        setLive("stopped");
        state.streamStopped = final.replace("{campaign}", state.campaignId);
        showError(state.streamStopped);
        return;
      }
      setTimeout(() => {
        if (state.source === source) connect();
      }, REOPEN_MS);
    };
    // On (re)connecting, whatever changed while away is fetched.
    source.addEventListener("hello", (e) => {
      heard();
      setLive("live");
      const hello = JSON.parse(e.data);
      state.version = hello.version;
      if (hello.heartbeat > 0) state.heartbeatMs = hello.heartbeat * 1000;
      schedule({ coverage: true, stats: true });
    });
    source.addEventListener("change", (e) => {
      heard();
      const change = JSON.parse(e.data);
      state.version = change.version;
      // As of a moment past, what the hub knew then does not change: asked again at every
      // change it was the same answers (or the same refusal, a 404 a second before launch).
      // A moment within a minute of now, or to come, is still asked: events recorded before
      // it may still be arriving.
      if (state.asOf && Date.parse(state.asOf) < Date.now() - 60_000) return;
      schedule({ coverage: change.coverage, stats: true });
    });
  }

  // A live stream gone silent is said lost, its figures dimmed, and opened again: the new
  // stream's hello makes the page live and refetches what changed meanwhile. Until then the
  // notice counts the seconds since the hub's last word, each second: it said "35 秒" for as
  // long as the hub was away, minutes on.
  function watchStream() {
    const source = state.source;
    const silent = Date.now() - state.heardAt;
    const said = () =>
      showError(`看板服务已 ${Math.round(silent / 1000)} 秒无响应，正在重新连接，恢复后自动更新`);
    if (state.silent) {
      // Heard again (its refresh clears the notice), or refused for good (which it says).
      if (state.liveMode === "live" || state.liveMode === "stopped") state.silent = false;
      else said();
      return;
    }
    if (!source || state.liveMode !== "live" || source.readyState !== EventSource.OPEN) return;
    if (silent <= SILENT_HEARTBEATS * state.heartbeatMs + SILENT_MARGIN_MS) return;
    connect();
    setLive("lost");
    state.silent = true;
    said();
  }

  // ---- controls -----------------------------------------------------------------------------

  function drillTo(path) {
    state.scopePath = path;
    schedule({ stats: true });
  }

  function setupControls() {
    showAreas();
    $("#campaign-select").addEventListener("change", (e) => {
      state.badCampaign = "";
      selectCampaign(e.target.value);
    });
    $("#as-of").addEventListener("change", (e) => {
      const iso = fromAsOfInput(e.target.value);
      if (e.target.value && !iso) return; // a half-typed moment: wait for the rest
      setAsOf(iso);
      schedule({ coverage: true, stats: true });
    });
    $("#as-of-now").addEventListener("click", () => {
      setAsOf("");
      schedule({ coverage: true, stats: true });
    });
    $("#on").addEventListener("change", (e) => {
      if (!e.target.value && e.target.validity.badInput) return; // a half-typed date
      setOn(e.target.value);
      schedule({ coverage: true });
    });
    $("#on-now").addEventListener("click", () => {
      setOn("");
      schedule({ coverage: true });
    });
    $("#area").addEventListener("change", (e) => {
      state.area = e.target.value;
      schedule({ stats: true });
    });
    const onDate = () => {
      const [shownFrom, shownTo] = state.shownWindow || [];
      const [fromValue, toValue] = [$("#from").value, $("#to").value];
      const from =
        fromValue === shownFrom ? Date.parse(state.from) : fromBeijingDate(fromValue);
      const to =
        toValue === shownTo ? Date.parse(state.to) : fromBeijingDate(toValue) + DAY_MS;
      if (Number.isNaN(from) || Number.isNaN(to) || to <= from) {
        // Kept said until the window is mended: the next live refresh cleared it within a
        // second, the fields showing a window the figures were not of.
        state.badWindow = "期间: 结束日期须不早于开始日期（图表仍为上一个期间）";
        showError(null);
        return;
      }
      state.badWindow = "";
      state.from = new Date(from).toISOString();
      state.to = new Date(to).toISOString();
      state.granularity = fitting(state.granularity);
      showWindow();
      schedule({ stats: true });
    };
    $("#from").addEventListener("change", onDate);
    $("#to").addEventListener("change", onDate);
    $("#window-reset").addEventListener("click", () => {
      resetWindow();
      schedule({ stats: true });
    });
    $("#granularity").addEventListener("click", (e) => {
      const g = e.target.dataset && e.target.dataset.g;
      if (!g) return;
      state.granularity = fitting(g);
      showWindow();
      schedule({ stats: true });
    });
    $("#kpis").addEventListener("click", (e) => {
      const tile = e.target.closest("[data-metric]");
      if (!tile) return;
      state.metric = tile.dataset.metric;
      $$("#kpis .kpi").forEach((k) => chosen(k, k === tile));
      keepingFocus(renderCharts);
    });
    const drillInto = (bar) =>
      drillTo([...state.scopePath, { unitId: bar.dataset.key, name: bar.dataset.name }]);
    $("#bars").addEventListener("click", (e) => {
      const bar = e.target.closest("g.bar.drill");
      if (bar) drillInto(bar);
    });
    $("#bars").addEventListener("keydown", (e) => {
      const bar = e.target.closest("g.bar.drill");
      if (!bar || (e.key !== "Enter" && e.key !== " ")) return;
      e.preventDefault(); // a space would scroll the page
      drillInto(bar);
    });
    $("#crumbs").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-depth]");
      if (b) drillTo(state.scopePath.slice(0, Number(b.dataset.depth)));
    });
    $("#counties").addEventListener("click", (e) => {
      const c = e.target.closest("[data-county]");
      if (!c) return;
      // A county's own page has its county at the top already.
      const top = c.dataset.county === state.city.unitId;
      drillTo(top ? [] : [{ unitId: c.dataset.county, name: $(".name", c).textContent }]);
    });
    $("#county-groups").addEventListener("click", (e) => {
      const toggle = e.target.closest("button.toggle");
      if (!toggle) return;
      const group = toggle.closest("[data-group]");
      const id = group.dataset.group;
      const open = !state.expanded.has(id);
      if (open) buildDetail(group);
      if (open) state.expanded.add(id);
      else state.expanded.delete(id);
      group.classList.toggle("open", open);
      toggle.setAttribute("aria-expanded", String(open));
      $(".detail", group).hidden = !open;
    });
    setupVisits();
    let resize = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resize);
      resize = setTimeout(() => {
        keepingFocus(renderCharts);
        for (const el of $$("#county-groups .group")) if (el.mosaic) el.mosaic.layout();
      }, 150);
    });
  }

  function setupVisits() {
    for (const box of ["#city-groups", "#county-groups"]) {
      $(box).addEventListener("click", (e) => {
        const bar = e.target.closest("[data-visits]");
        if (bar) openVisits(bar.dataset.visits);
      });
    }
    const dialog = $("#visits");
    $("#visits-close").addEventListener("click", closeVisits);
    dialog.addEventListener("close", visitsClosed);
    // A click on the backdrop (the dialog itself: its content fills it) closes it too.
    dialog.addEventListener("click", (e) => e.target === dialog && closeVisits());
  }

  async function init() {
    setupControls();
    setInterval(watchStream, 1000);
    $("#forget-token").addEventListener("click", forgetToken);
    // A query's '+' is a space: +08:00 typed in the address comes as ' 08:00', and a space
    // before an offset after a time can only be that '+' (as the API reads it).
    const given = new URL(location.href).searchParams.get("as_of");
    const asOf =
      given === null
        ? null
        : given.replace(/^(.+[Tt ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?) (\d\d:?\d\d)$/, "$1+$2");
    if (asOf !== null) {
      const iso = fromAddressAsOf(asOf);
      if (iso) setAsOf(iso);
      else state.badAddress = `as_of: 无法识别的时间 '${asOf}'，显示的是实时数据 (not RFC 3339)`;
    }
    const on = new URL(location.href).searchParams.get("on");
    if (on !== null) {
      const day = fromAddressDay(on.trim());
      if (day) setOn(day);
      else state.badOn = `on: 无法识别的日期 '${on}'，显示的是至今的覆盖 (not a date: 2022-11-20)`;
    }
    try {
      // Who the page asks as: a token kept in the cookie can be forgotten.
      showForget((await api("api/session")).cookie);
      const cities = await api("api/units");
      if (cities.units.length) state.city = cities.units[0];
      await loadCampaigns();
      const wanted = new URL(location.href).searchParams.get("campaign");
      const ids = state.campaigns.map((c) => c.campaignId);
      const id = ids.includes(wanted) ? wanted : defaultCampaign(state.campaigns);
      if (wanted && id !== wanted) {
        // A link to a campaign the hub does not know (mistyped, or not launched yet) showed
        // another campaign's coverage under the wall screen's title without a word.
        const instead = state.campaigns.find((c) => c.campaignId === id);
        const shown = instead ? `，显示的是 ${isolated(instead.name)}` : "";
        state.badCampaign = `campaign: 未知的督导活动 '${wanted}'${shown} (unknown campaign)`;
      }
      if (id) {
        await selectCampaign(id);
      } else {
        resetWindow();
        buildStructure();
        connect();
        await refreshNow({ coverage: false, stats: true });
        renderCoverage();
      }
    } catch (err) {
      showError(err);
    }
  }

  init();
})();
