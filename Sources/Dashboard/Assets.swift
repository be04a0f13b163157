/// The stylesheet and script, compiled into the binary: the dashboard
/// fetches nothing from elsewhere at run time, and the Content-Security-
/// Policy allows only these ('self'), no inline script or style.
enum Assets {
    static let css = """
        :root { --fg: #1d2330; --muted: #5b6475; --line: #d8dde6; --bg: #f6f7f9; --ok: #1f7a3a; --bad: #b42318; --warn: #9a6700; --accent: #2f5bd3; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); }
        header { display: flex; align-items: center; gap: 24px; padding: 10px 20px; background: #1d2330; color: #fff; }
        header a { color: #cfd6e4; text-decoration: none; }
        header a.current { color: #fff; font-weight: 600; }
        header .brand { font-weight: 700; color: #fff; }
        header .who { margin-left: auto; color: #9aa3b5; font-size: 12px; }
        main { padding: 16px 20px 40px; }
        h1 { font-size: 20px; margin: 4px 0 14px; }
        h2 { font-size: 16px; margin: 22px 0 8px; }
        table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); width: 100%; }
        th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { background: #eef1f5; font-weight: 600; font-size: 12px; color: var(--muted); }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        a { color: var(--accent); }
        .state { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; background: #e7eaf0; }
        .state-completed { background: #dcf3e3; color: var(--ok); }
        .state-discarded, .state-cancelled { background: #fde4e1; color: var(--bad); }
        .state-running { background: #e1e9fd; color: var(--accent); }
        .state-retryable { background: #fff1d6; color: var(--warn); }
        .paused { color: var(--warn); font-weight: 600; }
        .muted, .estimate { color: var(--muted); font-size: 12px; }
        .notice { padding: 8px 12px; border: 1px solid var(--line); background: #fff; margin-bottom: 12px; }
        .notice.error { border-color: var(--bad); color: var(--bad); }
        form.inline { display: inline; margin: 0; }
        button { font: inherit; padding: 2px 10px; border: 1px solid var(--line); border-radius: 4px; background: #fff; cursor: pointer; }
        button.danger { color: var(--bad); border-color: #f0b7b0; }
        form.filters { display: flex; flex-wrap: wrap; gap: 8px; align-items: end; margin-bottom: 12px; }
        form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
        form.filters input, form.filters select { font: inherit; padding: 3px 6px; }
        pre { background: #fff; border: 1px solid var(--line); padding: 8px 10px; overflow: auto; max-height: 360px; white-space: pre-wrap; word-break: break-word; }
        .pager { display: flex; gap: 16px; margin: 10px 0; }
        .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
        .chart { background: #fff; border: 1px solid var(--line); padding: 8px; }
        .chart svg { width: 100%; height: auto; }
        dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; border: 1px solid var(--line); padding: 10px; margin: 0; }
        dl.fields dt { color: var(--muted); }
        dl.fields dd { margin: 0; }
        ol.timeline { background: #fff; border: 1px solid var(--line); padding: 10px 10px 10px 34px; margin: 0; }
        .refresh { font-size: 12px; color: #9aa3b5; }
        .refresh button { font-size: 12px; padding: 0 6px; background: transparent; color: #cfd6e4; border-color: #4a5368; }
        """

    /// Self-refresh: every few seconds the page fetches its own URL (so the
    /// filters in the query string stay) and swaps in the new <main>, unless
    /// the user is typing in a form, has paused refreshing, or the tab is
    /// hidden.
    static let js = """
        (function () {
          'use strict';
          var seconds = 5;
          var paused = sessionStorage.getItem('hl-refresh-paused') === '1';
          var button = document.getElementById('refresh-toggle');
          var status = document.getElementById('refresh-status');
          function show() {
            if (button) { button.textContent = paused ? 'resume' : 'pause'; }
            if (status) { status.textContent = paused ? 'auto-refresh paused' : 'auto-refresh every ' + seconds + ' s'; }
          }
          if (button) {
            button.addEventListener('click', function () {
              paused = !paused;
              sessionStorage.setItem('hl-refresh-paused', paused ? '1' : '0');
              show();
            });
          }
          function busy() {
            var active = document.activeElement;
            return active && active.closest && active.closest('form') !== null && active.tagName !== 'BUTTON';
          }
          function refresh() {
            if (paused || document.hidden || busy()) { return; }
            fetch(window.location.href, { credentials: 'same-origin', headers: { 'X-HL-Refresh': '1' } })
              .then(function (response) { return response.ok ? response.text() : null; })
              .then(function (text) {
                if (text === null || busy()) { return; }
                var next = new DOMParser().parseFromString(text, 'text/html').querySelector('main');
                var current = document.querySelector('main');
                if (next && current) {
                  current.replaceWith(next);
                  document.body.setAttribute('data-refreshed', String(Date.now()));
                }
              })
              .catch(function () {});
          }
          show();
          window.setInterval(refresh, seconds * 1000);
        })();
        """
}
