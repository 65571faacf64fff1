/**
 * The dashboard's HTML and CSS, served as they are (no framework, no external asset); its script is
 * bundled from the server package's `dashboard/src`.
 *
 * @since 0.1.0
 */

/**
 * The page. It has no inline script or style: `app.js` and `app.css` fill it in, under a strict CSP.
 *
 * @since 0.1.0
 */
export const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>effect-batch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<header>
  <h1>effect-batch</h1>
  <span class="sub">batches, live</span>
  <span id="live" class="live" data-live="off">offline</span>
</header>
<main>
  <section id="auth" class="card" hidden>
    <h2>Sign in</h2>
    <p>Paste a token (one of <code>EFFECT_BATCH_TOKENS</code>), or open the address the server printed.</p>
    <form id="auth-form">
      <input id="auth-token" type="password" autocomplete="off" placeholder="token" required>
      <button type="submit">Open</button>
    </form>
    <p id="auth-error" class="error"></p>
  </section>
  <section id="batches" class="card">
    <h2>Batches</h2>
    <table class="list">
      <thead><tr><th>Workflow</th><th>Batch</th><th>State</th><th class="wide">Progress</th><th>Settled</th><th>Created</th></tr></thead>
      <tbody id="batch-rows"></tbody>
    </table>
    <p id="batches-empty" class="muted" hidden>No batch yet.</p>
  </section>
  <section id="campaigns" class="card" hidden>
    <h2>Campaigns</h2>
    <table class="list">
      <thead><tr><th>Workflow</th><th>Campaign</th><th>State</th><th class="wide">Progress</th><th>Items</th><th>Batches</th><th>Created</th></tr></thead>
      <tbody id="campaign-rows"></tbody>
    </table>
  </section>
  <section id="limiters" class="card" hidden>
    <h2>Shared limiters</h2>
    <table class="list">
      <thead><tr><th>Limiter</th><th>In window</th><th>Available</th><th>Held back</th><th>Throttles</th><th>Processes</th><th>Concurrency</th></tr></thead>
      <tbody id="limiter-rows"></tbody>
    </table>
  </section>
  <section id="batch" class="card" hidden>
    <div class="head">
      <a id="batch-campaign" class="back" href="#" hidden>← campaign</a>
      <h2 id="batch-title"></h2>
      <span id="batch-state" class="badge"></span>
      <span id="batch-detail" class="muted"></span>
    </div>
    <div id="batch-bar" class="bar big"></div>
    <div class="stats">
      <div><span class="label">Settled</span><span class="value"><strong id="settled">0</strong> / <span id="total">0</span> <span id="percent" class="muted"></span></span></div>
      <div><span class="label">Throughput</span><span id="throughput" class="value"></span></div>
      <div><span class="label">Steps done</span><span id="steps" class="value"></span></div>
      <div><span class="label">ETA</span><span id="eta" class="value"></span></div>
      <div><span class="label">p50 / p95</span><span id="latency" class="value"></span></div>
      <div><span class="label">Round</span><span id="round" class="value"></span></div>
    </div>
    <div id="counts" class="counts"></div>
    <div id="stages" class="muted"></div>
    <div id="trends" class="trends"></div>
    <div class="actions">
      <input id="note" maxlength="2000" placeholder="note (optional)">
      <button data-action="pause">Pause</button>
      <button data-action="resume">Resume</button>
      <button data-action="cancel" class="danger">Cancel</button>
      <button data-action="approve" class="ok">Approve</button>
      <button data-action="reject" class="danger">Reject</button>
      <button data-action="retry">Retry failed</button>
    </div>
    <p id="message" class="message" role="status"></p>
    <div class="columns">
      <div>
        <div class="table-head">
          <h3>Items</h3>
          <label>State <select id="filter"></select></label>
        </div>
        <table class="items">
          <thead><tr><th>Key</th><th>State</th><th>Attempts</th><th>Round</th><th>Steps</th><th>Duration</th><th>Error</th></tr></thead>
          <tbody id="item-rows"></tbody>
        </table>
        <button id="more" hidden>Load more</button>
      </div>
      <div>
        <h3>Latest errors</h3>
        <ul id="errors" class="feed"></ul>
        <h3>Live events</h3>
        <ul id="events" class="feed"></ul>
      </div>
    </div>
  </section>
  <section id="campaign" class="card" hidden>
    <div class="head">
      <h2 id="campaign-title"></h2>
      <span id="campaign-state" class="badge"></span>
      <span id="campaign-detail" class="muted"></span>
    </div>
    <div id="campaign-bar" class="bar big" title="items"></div>
    <div id="campaign-batch-bar" class="bar" title="batches"></div>
    <div class="stats">
      <div><span class="label">Items settled</span><span class="value"><strong id="campaign-settled">0</strong> / <span id="campaign-total">0</span> <span id="campaign-percent" class="muted"></span></span></div>
      <div><span class="label">Batches done</span><span class="value"><strong id="campaign-batches-done">0</strong> / <span id="campaign-batches-total">0</span> <span id="campaign-batches-percent" class="muted"></span></span></div>
      <div><span class="label">Throughput</span><span id="campaign-throughput" class="value"></span></div>
      <div><span class="label">ETA</span><span id="campaign-eta" class="value"></span></div>
      <div><span class="label">Batches running / concurrency</span><span id="campaign-active" class="value"></span></div>
      <div><span class="label">Round</span><span id="campaign-round" class="value"></span></div>
    </div>
    <div class="actions">
      <input id="campaign-note" maxlength="2000" placeholder="note (optional)">
      <label><input id="campaign-cascade" type="checkbox"> pause the running batches too</label>
      <button data-campaign-action="pause">Pause</button>
      <button data-campaign-action="resume">Resume</button>
      <button data-campaign-action="cancel" class="danger">Cancel</button>
      <button data-campaign-action="approve" class="ok">Approve</button>
      <button data-campaign-action="reject" class="danger">Reject</button>
      <button data-campaign-action="retry">Retry failed</button>
      <label>Concurrency <input id="campaign-concurrency" type="number" min="1" max="1000" step="1"></label>
      <button data-campaign-action="concurrency">Set</button>
    </div>
    <p id="campaign-message" class="message" role="status"></p>
    <div class="columns">
      <div>
        <div class="table-head"><h3>Batches</h3><span id="campaign-shown" class="muted"></span></div>
        <div id="campaign-batches" class="tiles"></div>
        <button id="campaign-more" hidden>Show more batches</button>
      </div>
      <div>
        <h3>Quarantined items (<span id="campaign-quarantined-count">0</span>)</h3>
        <ul id="campaign-quarantined" class="feed links"></ul>
        <h3>Live events</h3>
        <ul id="campaign-events" class="feed"></ul>
      </div>
    </div>
  </section>
</main>
<dialog id="confirm">
  <h3 id="confirm-title"></h3>
  <p id="confirm-text"></p>
  <ul id="confirm-list" class="keys"></ul>
  <div class="actions">
    <button id="confirm-no">Back</button>
    <button id="confirm-yes" class="danger"></button>
  </div>
</dialog>
</body>
</html>
`

/**
 * The page's stylesheet.
 *
 * @since 0.1.0
 */
export const css = `
:root { --bg: #f4f5f7; --card: #fff; --ink: #1d2330; --muted: #6b7280; --line: #e3e6eb;
  --queued: #cfd5de; --running: #3b82f6; --retryScheduled: #f5b031; --succeeded: #22a06b;
  --failed: #e5484d; --quarantined: #8e4ec6; --skipped: #9aa3af; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--ink); }
header { display: flex; align-items: baseline; gap: 12px; padding: 12px 24px; background: #1d2330; color: #fff; }
header h1 { margin: 0; font-size: 18px; }
header .sub { color: #aab2c0; }
.live { margin-left: auto; font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #3a4252; }
.live[data-live="on"] { background: #22a06b; }
main { max-width: 1280px; margin: 0 auto; padding: 16px 24px; display: grid; gap: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px; }
h2 { margin: 0 0 10px; font-size: 16px; } h3 { margin: 8px 0; font-size: 14px; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
th.wide { width: 38%; }
.list tbody tr { cursor: pointer; } .list tbody tr:hover { background: #f0f4ff; }
.list tbody tr.selected { background: #e8efff; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.muted { color: var(--muted); }
.bar { display: flex; height: 10px; border-radius: 5px; overflow: hidden; background: var(--queued); min-width: 120px; }
.bar.big { height: 18px; border-radius: 9px; margin: 10px 0; }
.bar span { display: block; height: 100%; transition: width .4s ease; }
.s-queued { background: var(--queued); } .s-running { background: var(--running); }
.s-retryScheduled { background: var(--retryScheduled); } .s-succeeded { background: var(--succeeded); }
.s-failed { background: var(--failed); } .s-quarantined { background: var(--quarantined); }
.s-skipped { background: var(--skipped); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; background: #e5e7eb; }
.b-Running { background: #dbeafe; color: #1e4fb8; } .b-Paused { background: #fef3c7; color: #8a5a00; }
.b-AwaitingReview { background: #ede9fe; color: #5b21b6; } .b-Completed, .b-Succeeded { background: #dcfce7; color: #166534; }
.b-Failed, .b-Rejected { background: #fee2e2; color: #9b1c1c; } .b-Cancelled, .b-Skipped { background: #e5e7eb; color: #374151; }
.b-Quarantined { background: #f3e8ff; color: #6b21a8; } .b-RetryScheduled { background: #fef3c7; color: #8a5a00; }
.b-Queued, .b-Pending { background: #f1f5f9; color: #475569; }
.head { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; } .head h2 { margin: 0; }
.stats { display: flex; gap: 28px; flex-wrap: wrap; margin: 6px 0 12px; }
.stats .label { display: block; font-size: 12px; color: var(--muted); } .stats .value { font-size: 16px; }
.counts { display: grid; grid-template-columns: repeat(7, 1fr); gap: 8px; margin-bottom: 12px; }
.count { border: 1px solid var(--line); border-left-width: 4px; border-radius: 6px; padding: 6px 10px; background: #fff; cursor: pointer; text-align: left; font: inherit; }
.count strong { display: block; font-size: 18px; } .count span { font-size: 12px; color: var(--muted); }
.count.active { outline: 2px solid var(--running); }
.count.c-queued { border-left-color: var(--queued); } .count.c-running { border-left-color: var(--running); }
.count.c-retryScheduled { border-left-color: var(--retryScheduled); } .count.c-succeeded { border-left-color: var(--succeeded); }
.count.c-failed { border-left-color: var(--failed); } .count.c-quarantined { border-left-color: var(--quarantined); }
.count.c-skipped { border-left-color: var(--skipped); }
.actions { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
.actions input { flex: 1; min-width: 180px; }
input, select { font: inherit; padding: 5px 8px; border: 1px solid #c8ced8; border-radius: 6px; }
button { font: inherit; padding: 5px 12px; border: 1px solid #c8ced8; border-radius: 6px; background: #fff; cursor: pointer; }
button:hover:not(:disabled) { background: #f0f4ff; } button:disabled { opacity: .45; cursor: default; }
button.danger { color: #b42318; } button.ok { color: #166534; }
.message { min-height: 1.45em; margin: 8px 0; } .message.error, .error { color: #b42318; }
.columns { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 1fr); gap: 20px; }
.table-head { display: flex; align-items: center; justify-content: space-between; }
.items td.mono { white-space: nowrap; max-width: 260px; overflow: hidden; text-overflow: ellipsis; }
.items td.err { color: #9b1c1c; max-width: 360px; overflow-wrap: anywhere; }
.feed { list-style: none; margin: 0; padding: 0; max-height: 300px; overflow: auto; font-size: 12px; }
.feed li { padding: 3px 0; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
.feed .tag { font-weight: 600; margin-right: 6px; }
dialog { border: 1px solid var(--line); border-radius: 8px; padding: 18px; max-width: 520px; width: 90%; }
dialog::backdrop { background: rgba(20, 24, 33, .45); }
.keys { max-height: 220px; overflow: auto; font-family: ui-monospace, monospace; font-size: 12px; }
.back { font-size: 13px; } .actions input[type=number] { flex: 0; min-width: 70px; width: 70px; }
.actions input[type=checkbox] { flex: 0; min-width: 0; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.tile { display: grid; gap: 6px; text-align: left; padding: 8px; }
.tile .tile-head { display: flex; justify-content: space-between; align-items: center; gap: 6px; }
.tile .bar { min-width: 0; }
.links li { cursor: pointer; } .links li:hover { background: #f0f4ff; }
.trends { margin: 8px 0; } .trends-head { font-size: 13px; color: #555; }
.trend-chart { width: 100%; max-width: 480px; height: 90px; background: #fafafa; border-radius: 4px; }
.trend-throughput { stroke: #2d6cdf; stroke-width: 2; } .trend-p95 { stroke: #d97706; stroke-width: 1.5; stroke-dasharray: 4 3; }
#auth form { display: flex; gap: 8px; } #auth input { flex: 1; }
@media (max-width: 900px) { .columns { grid-template-columns: 1fr; } .counts { grid-template-columns: repeat(4, 1fr); } }
`
