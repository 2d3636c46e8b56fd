/*
 * The StepKit dashboard (docs/dashboard.md): runs, one run, workflows, the
 * queue.  Plain JavaScript, no framework; charts by uPlot (ui/vendor),
 * dates by the browser's Intl.  Every text from the server goes into the
 * page with textContent (the h() helper), never as HTML.
 */
(function () {
  'use strict';

  var API = '/ui/api';
  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  var TOKEN_KEY = 'stepkit.ui.token';
  var LIST_REFRESH_MS = 3000, RUN_REFRESH_MS = 2000, STATS_REFRESH_MS = 5000;

  var config = { writable: false, version: '', schema: '' };
  var timer = null;          /* the current view's refresh */
  var view = null;           /* {name, stop()} */
  var main = document.getElementById('main');

  /* ---- helpers ------------------------------------------------------------ */

  /* h('div', {class: 'x', onclick: f}, 'text', child...): elements with text children only. */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    var k, i, c;
    for (k in attrs || {}) {
      if (!Object.prototype.hasOwnProperty.call(attrs, k) || attrs[k] == null) continue;
      if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), attrs[k]);
      else if (k === 'class') el.className = attrs[k];
      else if (k === 'style') el.style.cssText = attrs[k]; /* CSSOM: allowed by the CSP, unlike a style attribute */
      else el.setAttribute(k, attrs[k]);
    }
    for (i = 2; i < arguments.length; i++) {
      c = arguments[i];
      if (c == null || c === false) continue;
      if (Array.isArray(c)) c.forEach(function (x) { if (x != null) el.append(x); });
      else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  var dateFmt = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false
  });
  var timeFmt = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false
  });
  var relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  var numFmt = new Intl.NumberFormat();

  function ms(iso) { return iso ? Date.parse(iso) : NaN; }
  function fmtDate(iso) { return iso ? dateFmt.format(new Date(iso)) : ''; }
  function fmtAgo(iso) {
    var d = (ms(iso) - Date.now()) / 1000, a = Math.abs(d);
    if (isNaN(d)) return '';
    if (a < 60) return relFmt.format(Math.round(d), 'second');
    if (a < 3600) return relFmt.format(Math.round(d / 60), 'minute');
    if (a < 86400) return relFmt.format(Math.round(d / 3600), 'hour');
    return relFmt.format(Math.round(d / 86400), 'day');
  }
  function fmtDur(millis) {
    if (millis == null || isNaN(millis)) return '';
    if (millis < 1000) return Math.round(millis) + ' ms';
    if (millis < 60000) return (millis / 1000).toFixed(millis < 10000 ? 2 : 1) + ' s';
    if (millis < 3600000) return Math.floor(millis / 60000) + ' min ' + Math.round((millis % 60000) / 1000) + ' s';
    return Math.floor(millis / 3600000) + ' h ' + Math.round((millis % 3600000) / 60000) + ' min';
  }
  function when(iso) {
    return iso ? h('span', { title: fmtDate(iso) + ' (' + iso + ')' }, fmtAgo(iso)) : h('span', { class: 'muted' }, '–');
  }
  function badge(status) { return h('span', { class: 'badge ' + status, 'data-status': status }, status); }
  function runLink(id, text) {
    if (!UUID.test(id || '')) return h('span', { class: 'mono' }, String(id || ''));
    return h('a', { href: '/ui/runs/' + id, 'data-nav': '', class: 'mono', title: id }, text || id);
  }
  function shortId(id) { return id ? id.slice(0, 8) + '…' : ''; }

  function toast(msg, bad) {
    var t = document.getElementById('toast');
    t.textContent = msg;
    t.className = 'show' + (bad ? ' bad' : '');
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.className = ''; }, bad ? 6000 : 3000);
  }

  /* A payload as pretty JSON; a truncated one says so and shows its preview. */
  function payload(v) {
    if (v && typeof v === 'object' && !Array.isArray(v) && v._truncated && Object.keys(v).length === 1) {
      return h('div', {},
        h('p', { class: 'muted' }, 'Too large to show (' + numFmt.format(v._truncated.bytes) +
          ' bytes of JSON); the first characters:'),
        h('pre', { class: 'json' }, v._truncated.preview + ' …'));
    }
    return h('pre', { class: 'json' }, v === undefined ? 'null' : JSON.stringify(v, null, 2));
  }

  function getToken() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; } }
  function setToken(t) {
    try { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ }
    showMode();
  }

  function fail(status, body) {
    var e = new Error((body && body.error) || ('HTTP ' + status));
    e.status = status;
    return e;
  }

  function getJSON(path) {
    return fetch(API + path, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (b) {
          if (!r.ok) throw fail(r.status, b);
          return b;
        });
      });
  }

  function postJSON(path, body) {
    var headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    var t = getToken();
    if (t) headers.Authorization = 'Bearer ' + t;
    return fetch(API + path, {
      method: 'POST', headers: headers, body: JSON.stringify(body || {}), credentials: 'same-origin'
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        if (!r.ok) throw fail(r.status, b);
        return b;
      });
    });
  }

  /* ---- chrome: mode, token, confirmation ----------------------------------- */

  function showMode() {
    var m = document.getElementById('mode');
    if (!config.writable) {
      m.textContent = 'read-only';
      m.className = 'mode';
      m.title = 'The master runs without --ui-token-file: cancel and retry are off.';
    } else if (getToken()) {
      m.textContent = 'token set';
      m.className = 'mode writable';
      m.title = 'Cancel and retry send the token you entered.';
    } else {
      m.textContent = 'token needed for actions';
      m.className = 'mode';
      m.title = 'Enter the token to cancel or retry runs.';
    }
    document.getElementById('token-btn').hidden = !config.writable;
  }

  function askToken(message) {
    var d = document.getElementById('token-dialog');
    document.getElementById('token-text').textContent = message ||
      'Cancel and retry need the token from the master\'s --ui-token-file. It is kept in this tab only ' +
      '(session storage) and sent in a header, never in a cookie or a URL.';
    document.getElementById('token-input').value = '';
    d.returnValue = '';
    return new Promise(function (resolve) {
      d.addEventListener('close', function once() {
        d.removeEventListener('close', once);
        if (d.returnValue === 'ok') setToken(document.getElementById('token-input').value.trim());
        else if (d.returnValue === 'clear') setToken('');
        resolve(d.returnValue === 'ok');
      });
      d.showModal();
    });
  }

  function confirmAction(title, text, withReason) {
    var d = document.getElementById('confirm');
    document.getElementById('confirm-title').textContent = title;
    document.getElementById('confirm-text').textContent = text;
    document.getElementById('confirm-reason-label').hidden = !withReason;
    document.getElementById('confirm-reason').value = '';
    d.returnValue = '';
    return new Promise(function (resolve) {
      d.addEventListener('close', function once() {
        d.removeEventListener('close', once);
        resolve(d.returnValue === 'ok' ? { reason: document.getElementById('confirm-reason').value } : null);
      });
      d.showModal();
    });
  }

  /* POST an action; on 401 ask for the token once and try again. */
  function act(path, body) {
    return postJSON(path, body).catch(function (e) {
      if (e.status !== 401) throw e;
      return askToken('The server refused the request: ' + e.message).then(function (ok) {
        if (!ok) throw e;
        return postJSON(path, body);
      });
    });
  }

  /* ---- routing --------------------------------------------------------------- */

  function stopView() {
    if (timer) clearTimeout(timer);
    timer = null;
    if (view && view.stop) view.stop();
    view = null;
  }

  /* fn() every period while view v is shown; one loop at a time (gen). */
  function every(fn, period) {
    var mine = { gen: 0 };
    function tick(g) {
      Promise.resolve(fn()).catch(function () { /* shown by fn */ }).then(function () {
        if (view === mine.view && g === mine.gen) timer = setTimeout(function () { tick(g); }, period);
      });
    }
    mine.stop = function () {
      mine.gen++;
      if (timer) clearTimeout(timer);
      timer = null;
    };
    mine.start = function (v) {
      var g;
      mine.stop();
      mine.view = v;
      g = mine.gen;
      timer = setTimeout(function () { tick(g); }, period);
    };
    return mine;
  }

  function route() {
    var p = location.pathname.replace(/\/+$/, '');
    var m;
    stopView();
    document.querySelectorAll('.top nav a').forEach(function (a) {
      var v = a.getAttribute('data-view');
      a.classList.toggle('active', p === '/ui/' + v || p.indexOf('/ui/' + v + '/') === 0 || (v === 'runs' && p === '/ui'));
    });
    if ((m = p.match(/^\/ui\/runs\/([^/]+)$/))) return runPage(decodeURIComponent(m[1]));
    if (p === '/ui/workflows') return workflowsPage();
    if (p === '/ui/queue') return queuePage();
    return runsPage();
  }

  function go(href) {
    history.pushState(null, '', href);
    route();
    window.scrollTo(0, 0);
  }

  document.addEventListener('click', function (ev) {
    var a = ev.target.closest && ev.target.closest('a[data-nav]');
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    go(a.getAttribute('href'));
  });
  window.addEventListener('popstate', route);

  function setMain() {
    main.replaceChildren.apply(main, Array.prototype.slice.call(arguments));
  }

  function errorBox(e) {
    return h('div', { class: 'empty error-text', 'data-testid': 'error' }, 'Could not load: ' + e.message);
  }

  /* ---- runs ---------------------------------------------------------------------- */

  var SINCE = { '': 'any time', '15m': 'last 15 minutes', '1h': 'last hour', '24h': 'last 24 hours', '7d': 'last 7 days' };
  var SINCE_MS = { '15m': 9e5, '1h': 36e5, '24h': 864e5, '7d': 6048e5 };

  function runsPage() {
    var q = new URLSearchParams(location.search);
    var state = {
      workflow: q.get('workflow') || '', status: q.get('status') || '', since: q.get('since') || '',
      live: q.get('live') !== '0', rows: [], next: null, shown: 50
    };
    var me = { name: 'runs' };
    var wfSel = h('select', { name: 'workflow', 'data-testid': 'filter-workflow' }, h('option', { value: '' }, 'all workflows'));
    var stSel = h('select', { name: 'status', 'data-testid': 'filter-status' },
      ['', 'pending', 'completed', 'failed', 'cancelled'].map(function (s) {
        return h('option', { value: s }, s || 'any status');
      }));
    var sinceSel = h('select', { name: 'since', 'data-testid': 'filter-since' },
      Object.keys(SINCE).map(function (k) { return h('option', { value: k }, SINCE[k]); }));
    var search = h('input', { class: 'search mono', placeholder: 'Run id (UUID)', 'data-testid': 'search', spellcheck: 'false' });
    var live = h('input', { type: 'checkbox', 'data-testid': 'live' });
    var body = h('tbody', { 'data-testid': 'runs-body' });
    var info = h('span', { class: 'muted', 'data-testid': 'runs-info' });
    var moreBtn = h('button', { class: 'btn', type: 'button', 'data-testid': 'more' }, 'Older runs');
    var more = h('div', { class: 'more' }, moreBtn);

    stSel.value = state.status;
    sinceSel.value = SINCE[state.since] ? state.since : '';
    live.checked = state.live;

    function params(limit, after) {
      var p = new URLSearchParams();
      if (state.workflow) p.set('workflow', state.workflow);
      if (state.status) p.set('status', state.status);
      if (SINCE_MS[state.since]) p.set('since', new Date(Date.now() - SINCE_MS[state.since]).toISOString());
      p.set('limit', String(limit));
      if (after) p.set('after', after);
      return p.toString();
    }

    function keepInUrl() {
      var p = new URLSearchParams();
      if (state.workflow) p.set('workflow', state.workflow);
      if (state.status) p.set('status', state.status);
      if (state.since) p.set('since', state.since);
      if (!state.live) p.set('live', '0');
      var s = p.toString();
      history.replaceState(null, '', '/ui/runs' + (s ? '?' + s : ''));
    }

    function row(r) {
      var dur = r.ended_at ? ms(r.ended_at) - ms(r.created_at) : Date.now() - ms(r.created_at);
      return h('tr', { 'data-run': r.run_id },
        h('td', {}, runLink(r.run_id)),
        h('td', {}, h('a', { href: '/ui/runs?workflow=' + encodeURIComponent(r.workflow), 'data-nav': '' }, r.workflow)),
        h('td', {}, badge(r.status)),
        h('td', {}, r.trigger_type, r.trigger_type === 'event' ? h('span', { class: 'muted' }, ' ' + r.trigger_name) : null),
        h('td', {}, when(r.created_at)),
        h('td', { class: 'num' }, r.ended_at ? fmtDur(dur) : h('span', { class: 'muted' }, fmtDur(dur) + ' so far')),
        h('td', { class: 'num' }, r.retries ? String(r.retries) : ''),
        h('td', {}, r.parent_run_id ? runLink(r.parent_run_id, shortId(r.parent_run_id)) : ''));
    }

    function render() {
      body.replaceChildren.apply(body, state.rows.map(row));
      if (!state.rows.length)
        body.append(h('tr', {}, h('td', { colspan: '8', class: 'muted', style: 'text-align:center;padding:24px' }, 'No runs match.')));
      info.textContent = state.rows.length + (state.next ? '+' : '') + ' runs' + (state.live ? ' · refreshing every 3 s' : '');
      more.hidden = !state.next;
    }

    /* The first `shown` rows again: live refresh keeps what was loaded. */
    function load() {
      return getJSON('/runs?' + params(Math.min(state.shown, 500))).then(function (b) {
        if (view !== me) return;
        state.rows = b.runs;
        state.next = b.next;
        render();
      }, function (e) {
        if (view !== me) return;
        info.textContent = 'Could not load: ' + e.message;
        info.className = 'error-text';
      });
    }

    function reload() {
      state.shown = 50;
      keepInUrl();
      return load();
    }

    wfSel.addEventListener('change', function () { state.workflow = wfSel.value; reload(); });
    stSel.addEventListener('change', function () { state.status = stSel.value; reload(); });
    sinceSel.addEventListener('change', function () { state.since = sinceSel.value; reload(); });
    live.addEventListener('change', function () {
      state.live = live.checked;
      keepInUrl();
      render();
      if (state.live) poll.start(me); else poll.stop();
    });
    moreBtn.addEventListener('click', function () {
      getJSON('/runs?' + params(50, state.next)).then(function (b) {
        state.rows = state.rows.concat(b.runs);
        state.next = b.next;
        state.shown = state.rows.length;
        render();
      }, function (e) { toast(e.message, true); });
    });
    function find(ev) {
      var id = search.value.trim();
      ev.preventDefault();
      if (UUID.test(id)) go('/ui/runs/' + id.toLowerCase());
      else toast('A run id is a UUID such as 5f0c3c1e-…; paste the whole id.', true);
    }

    var poll = every(load, LIST_REFRESH_MS);
    view = me;
    setMain(
      h('h1', {}, 'Runs'),
      h('form', { class: 'filters', onsubmit: find },
        h('label', {}, 'Workflow', wfSel), h('label', {}, 'Status', stSel), h('label', {}, 'Created', sinceSel),
        h('label', {}, 'Find a run', search),
        h('button', { class: 'btn', type: 'submit' }, 'Open'),
        h('label', { class: 'check' }, live, 'Live'), info),
      h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'runs' },
        h('thead', {}, h('tr', {},
          h('th', {}, 'Run'), h('th', {}, 'Workflow'), h('th', {}, 'Status'), h('th', {}, 'Trigger'),
          h('th', {}, 'Created'), h('th', { class: 'num' }, 'Duration'), h('th', { class: 'num' }, 'Retries'),
          h('th', {}, 'Parent'))),
        body)),
      more);
    getJSON('/workflows').then(function (b) {
      b.workflows.forEach(function (w) { wfSel.append(h('option', { value: w.workflow }, w.workflow)); });
      wfSel.value = state.workflow;
      if (wfSel.value !== state.workflow) { /* a workflow no longer registered: still filter by it */
        wfSel.append(h('option', { value: state.workflow }, state.workflow));
        wfSel.value = state.workflow;
      }
    }, function () { /* the list still works without the names */ });
    load().then(function () { if (state.live && view === me) poll.start(me); });
  }

  /* ---- one run ----------------------------------------------------------------------- */

  function errorChain(err, testid) {
    var items = [], depth = 0, e = err;
    while (e && typeof e === 'object' && depth < 20) {
      if (e._truncated) { items.push(h('div', { class: 'err' }, payload(e))); break; }
      items.push(h('div', { class: 'err', 'data-testid': 'error-item' },
        depth ? h('span', { class: 'caused' }, 'caused by') : null,
        h('span', { class: 'err-name' }, String(e.name || 'Error')), ': ',
        h('span', { class: 'err-msg' }, String(e.message == null ? '' : e.message)),
        e.retryable === false && depth === 0 ? h('span', { class: 'muted' }, ' (not retryable)') : null,
        Array.isArray(e.issues) && e.issues.length ? h('ul', {}, e.issues.map(function (i) {
          return h('li', {}, JSON.stringify(i.path), ': ', String(i.message || ''),
            i.expected ? h('span', { class: 'muted' }, ' (expected ' + i.expected + ')') : null);
        })) : null,
        e.stack ? h('pre', {}, String(e.stack)) : null));
      e = e.cause;
      depth++;
    }
    return h('div', { class: 'error-chain', 'data-testid': testid || 'step-error' }, items);
  }

  function waitText(s) {
    var w = s.waiting_for || {};
    /* until: the wait's deadline, when it has one. */
    var until = w.until ? ' until ' + fmtDate(w.until) : '';
    if (w.kind === 'signal') return ['waiting for signal “' + (w.signal || '') + '”' + until];
    if (w.kind === 'child' || w.kind === 'invoke')
      return ['waiting for child run ', w.child ? runLink(w.child, shortId(w.child)) : '', w.workflow ? ' (' + w.workflow + ')' : '', until];
    if (w.kind === 'sleep' || w.kind === 'timer') return ['sleeping' + until];
    return ['waiting' + until];
  }

  function timeline(run, openSteps) {
    openSteps = openSteps || {};
    var steps = (run.steps || []).slice().sort(function (a, b) {
      return ms(a.started_at) - ms(b.started_at) || (a.step_id < b.step_id ? -1 : 1);
    });
    var t0 = ms(run.created_at);
    var end = run.ended_at ? ms(run.ended_at) : Date.now();
    steps.forEach(function (s) {
      var e = s.ended_at ? ms(s.ended_at) : (s.waiting_for && s.waiting_for.until ? Math.min(ms(s.waiting_for.until), Date.now()) : Date.now());
      if (e > end) end = e;
    });
    var span = Math.max(end - t0, 1);
    var ticks = [0, 0.25, 0.5, 0.75, 1].map(function (f) {
      return h('span', { style: 'left:' + (f * 100) + '%' }, f === 0 ? timeFmt.format(new Date(t0)) : '+' + fmtDur(f * span));
    });
    /* A step in progress has no record yet: one row from the last record to now. */
    var busy = null;
    if (run.status === 'running' || run.status === 'queued') {
      var from = steps.reduce(function (m, s) { return Math.max(m, s.ended_at ? ms(s.ended_at) : 0); }, t0);
      busy = { from: from, to: Date.now() };
      if (busy.to > end) end = busy.to;
      span = Math.max(end - t0, 1);
    }
    if (!steps.length && !busy) return h('div', { class: 'empty' }, 'No steps recorded yet.');
    return h('div', { class: 'timeline', 'data-testid': 'timeline' },
      h('div', { class: 'tl-axis' }, ticks),
      steps.map(function (s) {
        var a = ms(s.started_at), b;
        /* A wait of a run that ended (cancelled) stopped when the run did. */
        var cut = !s.ended_at && run.ended_at;
        if (s.ended_at) b = ms(s.ended_at);
        else b = cut ? Math.max(a, ms(run.ended_at)) : Date.now();
        var left = Math.max(0, (a - t0) / span * 100), width = Math.max(0, (b - a) / span * 100);
        var note = [];
        if (s.status === 'waiting') note = (cut ? ['stopped (run ' + run.status + ') while '] : []).concat(waitText(s));
        else note.push(fmtDur(b - a));
        if (s.attempts > 1 || s.status === 'retry' || s.status === 'error')
          note.push(' · ' + s.attempts + (s.attempts === 1 ? ' attempt' : ' attempts'));
        if (s.status === 'retry') note.push(' · retrying');
        if (s.status === 'error' && s.error) note.push(' · ' + (s.error.name || 'Error'));
        /* The note goes right of the bar, else left of it, else (a long bar) inside it. */
        var place = left + width <= 70 ? 'right' : left >= 30 ? 'left' : 'inside';
        var detail = s.status === 'ok' ? s.output : s.error;
        return h('div', { class: 'tl-step' },
          h('div', { class: 'tl-row', 'data-step': s.step_id, 'data-status': s.status },
            h('div', { class: 'tl-label', title: s.step_id + ' (' + s.kind + ', op ' + s.op_key + ')' },
              h('span', { class: 'tl-name' }, s.step_id), h('span', { class: 'kind' }, s.kind)),
            h('div', { class: 'tl-track' },
              h('div', {
                class: 'tl-bar ' + s.status + ' ' + s.kind + (cut ? ' stopped' : ''), 'data-testid': 'bar',
                style: 'left:' + left.toFixed(3) + '%;width:' + width.toFixed(3) + '%',
                title: s.step_id + ': ' + s.status + ', started ' + fmtDate(s.started_at) +
                  (s.ended_at ? ', ended ' + fmtDate(s.ended_at) : '')
              }),
              h('span', {
                class: 'tl-note' + (place === 'right' ? '' : ' ' + place),
                style: 'left:' + (place === 'right' ? left + width : left).toFixed(3) + '%'
              }, note))),
          detail !== undefined && detail !== null && s.status !== 'waiting'
            ? h('details', { class: 'tl-details', 'data-key': s.op_key, open: openSteps[s.op_key] ? '' : null },
                h('summary', {}, s.status === 'ok' ? 'output' : 'error'),
                s.status === 'ok' ? payload(detail) : errorChain(detail))
            : null);
      }),
      busy ? h('div', { class: 'tl-row', 'data-step': '', 'data-status': run.status },
        h('div', { class: 'tl-label muted' }, run.status === 'running' ? 'a step in progress' : 'queued for a worker'),
        h('div', { class: 'tl-track' },
          h('div', {
            class: 'tl-bar ' + run.status, 'data-testid': 'busy-bar',
            style: 'left:' + ((busy.from - t0) / span * 100).toFixed(3) + '%;width:' + ((busy.to - busy.from) / span * 100).toFixed(3) + '%'
          }),
          h('span', { class: 'tl-note inside', style: 'left:' + ((busy.from - t0) / span * 100).toFixed(3) + '%' },
            run.status === 'running' ? 'running for ' + fmtDur(busy.to - busy.from) : 'waiting for a worker'))) : null,
      run.steps_omitted ? h('p', { class: 'muted' }, run.steps_omitted + ' more steps not shown.') : null);
  }

  function runPage(id) {
    var me = { name: 'run' };
    view = me;
    if (!UUID.test(id)) {
      setMain(h('h1', {}, 'Run'), h('div', { class: 'empty error-text' }, 'Not a run id: ' + id));
      return;
    }
    setMain(h('h1', {}, 'Run ', h('span', { class: 'mono' }, id)), h('p', { class: 'muted' }, 'Loading…'));

    function actions(run) {
      var pending = ['completed', 'failed', 'cancelled'].indexOf(run.status) < 0;
      var why = config.writable ? '' : 'Read-only: the master runs without --ui-token-file.';
      var cancel = h('button', { class: 'btn danger', type: 'button', 'data-testid': 'cancel', title: why || 'Cancel this run and its unfinished child runs' }, 'Cancel run');
      var retry = h('button', { class: 'btn primary', type: 'button', 'data-testid': 'retry', title: why || 'Run the failed steps again' }, 'Retry run');
      cancel.disabled = !config.writable || !pending;
      retry.disabled = !config.writable || pending || run.status === 'completed';
      cancel.addEventListener('click', function () {
        confirmAction('Cancel this run?', 'Run ' + id + ' (' + run.workflow + ') ends as cancelled, with its unfinished child runs. ' +
          'A step already running may finish, but nothing after it runs.', true).then(function (ok) {
          if (!ok) return;
          act('/runs/' + id + '/cancel', ok.reason ? { reason: ok.reason } : {}).then(function (b) {
            toast(b.cancelled ? 'Cancelled ' + b.cancelled + (b.cancelled === 1 ? ' run' : ' runs') : 'The run had ended already');
            load();
          }, function (e) { toast('Cancel failed: ' + e.message, true); });
        });
      });
      retry.addEventListener('click', function () {
        confirmAction('Retry this run?', 'Run ' + id + ' (' + run.workflow + ') resumes: its successful steps are kept, ' +
          'the failed ones run again with a fresh attempt budget.', false).then(function (ok) {
          if (!ok) return;
          act('/runs/' + id + '/retry', {}).then(function (b) {
            toast('Retry ' + b.retry + ' started');
            load();
          }, function (e) { toast('Retry failed: ' + e.message, true); });
        });
      });
      return h('div', { class: 'run-actions' }, cancel, retry);
    }

    function render(run) {
      var open = {};
      main.querySelectorAll('details[open][data-key]').forEach(function (d) { open[d.getAttribute('data-key')] = true; });
      var dur = (run.ended_at ? ms(run.ended_at) : Date.now()) - ms(run.created_at);
      var input = run.input || {};
      var parts = [
        h('h1', {}, 'Run ', h('span', { class: 'mono', 'data-testid': 'run-id' }, run.run_id), badge(run.status), actions(run)),
        h('div', { class: 'panel facts' },
          h('div', {}, h('span', {}, 'Workflow'), h('a', { href: '/ui/runs?workflow=' + encodeURIComponent(run.workflow), 'data-nav': '' }, run.workflow)),
          h('div', {}, h('span', {}, 'Trigger'), (input.type || '') + (input.type === 'event' || input.type === 'cron' ? ' · ' + (input.name || '') : '')),
          h('div', {}, h('span', {}, 'Created'), fmtDate(run.created_at)),
          h('div', {}, h('span', {}, run.ended_at ? 'Ended' : 'Running for'), run.ended_at ? fmtDate(run.ended_at) + ' (' + fmtDur(dur) + ')' : fmtDur(dur)),
          h('div', {}, h('span', {}, 'Parent run'), run.parent_run_id ? runLink(run.parent_run_id) : h('span', { class: 'muted' }, 'none')),
          run.idempotency_key ? h('div', {}, h('span', {}, 'Idempotency key'), h('span', { class: 'mono' }, run.idempotency_key)) : null,
          run.cancel_reason ? h('div', {}, h('span', {}, 'Cancel reason'), run.cancel_reason) : null,
          h('div', {}, h('span', {}, 'Event id'), h('span', { class: 'mono' }, input.id || ''))),
      ];
      if (run.error) parts.push(h('h2', {}, 'Error'), errorChain(run.error, 'error-chain'));
      parts.push(h('h2', {}, 'Steps'), timeline(run, open));
      parts.push(h('div', { class: 'two' },
        h('div', { 'data-testid': 'input' }, h('h2', {}, 'Input'), payload(input.data)),
        h('div', { 'data-testid': 'output' }, h('h2', {}, 'Output'), run.status === 'completed' ? payload(run.output) : h('p', { class: 'muted' }, run.status === 'completed' ? 'null' : 'No output (' + run.status + ').'))));
      if (run.children && run.children.length) {
        parts.push(h('h2', {}, 'Child runs'), h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'children' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Run'), h('th', {}, 'Workflow'), h('th', {}, 'Status'), h('th', {}, 'Created'))),
          h('tbody', {}, run.children.map(function (c) {
            return h('tr', {}, h('td', {}, runLink(c.run_id)), h('td', {}, c.workflow), h('td', {}, badge(c.status)), h('td', {}, when(c.created_at)));
          })))));
      }
      if (run.retries && run.retries.length) {
        parts.push(h('h2', {}, 'Earlier ends (retried)'), h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, h('th', {}, 'Retry'), h('th', {}, 'Had ended'), h('th', {}, 'Error'), h('th', {}, 'Steps run again'))),
          h('tbody', {}, run.retries.map(function (r) {
            return h('tr', {}, h('td', { class: 'num' }, String(r.retry)),
              h('td', {}, badge(r.status), ' ', when(r.ended_at)),
              h('td', {}, r.error ? String(r.error.name || '') + ': ' + String(r.error.message || '') : ''),
              h('td', {}, (r.cleared_steps || []).map(function (s) { return h('span', { class: 'chip' }, s.step_id + ' (' + s.status + ', ' + s.attempts + ')'); })));
          })))));
      }
      setMain.apply(null, parts);
    }

    /* Again every 2 s while the run is unfinished. */
    function load() {
      if (timer) { clearTimeout(timer); timer = null; }
      return getJSON('/runs/' + id).then(function (run) {
        if (view !== me) return;
        render(run);
        if (['completed', 'failed', 'cancelled'].indexOf(run.status) < 0) timer = setTimeout(load, RUN_REFRESH_MS);
      }, function (e) {
        if (view !== me) return;
        setMain(h('h1', {}, 'Run ', h('span', { class: 'mono' }, id)), errorBox(e));
      });
    }
    load();
  }

  /* ---- workflows ------------------------------------------------------------------------ */

  function workflowsPage() {
    var me = { name: 'workflows' };
    var holder = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    view = me;
    setMain(h('h1', {}, 'Workflows'), holder);

    function rate(w) {
      var ended = w.completed_1h + w.failed_1h + w.cancelled_1h;
      if (!ended) return h('span', { class: 'muted' }, '–');
      var pct = Math.round(w.failed_1h / ended * 100);
      return h('span', { class: pct ? 'error-text' : '' }, pct + '%');
    }

    function render(list) {
      if (!list.length) {
        holder.replaceChildren(h('div', { class: 'empty' }, 'No workflow is registered in schema ' + config.schema + '.'));
        return;
      }
      holder.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'workflows' },
        h('thead', {}, h('tr', {},
          h('th', {}, 'Workflow'), h('th', { class: 'num' }, 'Queued'), h('th', { class: 'num' }, 'Running'),
          h('th', { class: 'num' }, 'Waiting'), h('th', { class: 'num' }, 'Completed / h'), h('th', { class: 'num' }, 'Failed / h'),
          h('th', { class: 'num' }, 'Cancelled / h'), h('th', { class: 'num' }, 'Failure rate'),
          h('th', { class: 'num' }, 'Ready items'), h('th', { class: 'num' }, 'Oldest ready'), h('th', {}, 'Triggers'))),
        h('tbody', {}, list.map(function (w) {
          return h('tr', { 'data-workflow': w.workflow },
            h('td', { class: 'wf-name' }, h('a', { href: '/ui/runs?workflow=' + encodeURIComponent(w.workflow), 'data-nav': '' }, w.workflow),
              h('div', { class: 'muted' }, 'max ' + w.max_attempts + ' attempts')),
            h('td', { class: 'num' }, numFmt.format(w.queued)), h('td', { class: 'num' }, numFmt.format(w.running)),
            h('td', { class: 'num' }, numFmt.format(w.waiting)), h('td', { class: 'num' }, numFmt.format(w.completed_1h)),
            h('td', { class: 'num' }, numFmt.format(w.failed_1h)), h('td', { class: 'num' }, numFmt.format(w.cancelled_1h)),
            h('td', { class: 'num' }, rate(w)),
            h('td', { class: 'num' }, numFmt.format(w.ready_items)),
            h('td', { class: 'num' }, w.oldest_ready_ms == null ? h('span', { class: 'muted' }, '–') : fmtDur(w.oldest_ready_ms)),
            h('td', {},
              (w.events || []).map(function (e) { return h('span', { class: 'chip', title: 'event' }, 'event: ' + e); }),
              (w.cron || []).map(function (c) {
                return h('div', { class: 'cron' }, h('span', { class: 'chip mono', title: 'cron schedule' }, 'cron: ' + c.schedule),
                  h('span', { class: 'muted' }, c.next_tick_at ? ' next ' + fmtAgo(c.next_tick_at) : ''),
                  c.last_run_id ? h('span', { class: 'muted' }, ' · last ', runLink(c.last_run_id, fmtAgo(c.last_tick_at))) : null);
              }),
              !(w.events || []).length && !(w.cron || []).length ? h('span', { class: 'muted' }, 'invoke only') : null));
        })))),
        h('p', { class: 'muted' }, 'Counts now; rates over the last hour. Refreshing every 5 s.'));
    }

    function load() {
      return getJSON('/workflows').then(function (b) { if (view === me) render(b.workflows); },
        function (e) { if (view === me) holder.replaceChildren(errorBox(e)); });
    }
    var poll = every(load, STATS_REFRESH_MS);
    load().then(function () { if (view === me) poll.start(me); });
  }

  /* ---- queue ---------------------------------------------------------------------------- */

  var COLORS = ['#3557d4', '#c4302b', '#1b8a4b', '#b7791f', '#7c4dcc', '#0f8b8d', '#d6336c', '#5c7cfa', '#868e96', '#2b8a3e'];

  function queuePage() {
    var me = { name: 'queue' };
    var readyBox = h('div', { 'data-testid': 'chart-ready' }), ageBox = h('div', { 'data-testid': 'chart-age' });
    var note = h('p', { class: 'muted', 'data-testid': 'queue-note' });
    var plots = [];
    view = me;
    me.stop = function () { plots.forEach(function (p) { p.destroy(); }); plots = []; };
    setMain(h('h1', {}, 'Queue'),
      h('div', { class: 'cards' },
        h('div', { class: 'chart' }, h('h2', {}, 'Ready items per workflow'), readyBox),
        h('div', { class: 'chart' }, h('h2', {}, 'Oldest ready item, seconds'), ageBox)),
      note);

    function opts(title, series, width) {
      return {
        width: width, height: 260, title: '',
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
        axes: [{}, { size: 50 }],
        series: [{}].concat(series.map(function (s, i) {
          return { label: s.workflow, stroke: COLORS[i % COLORS.length], width: 2, points: { show: false } };
        })),
        legend: { show: true, live: false }
      };
    }

    function draw(q) {
      var width = Math.max(320, readyBox.clientWidth || 500);
      var series = q.series.filter(function (s) {
        return s.ready.some(function (v) { return v > 0; }) || s.oldest_s.some(function (v) { return v > 0; });
      });
      if (!series.length) series = q.series.slice(0, 8);
      me.stop();
      readyBox.replaceChildren();
      ageBox.replaceChildren();
      if (!q.t.length || typeof uPlot === 'undefined') {
        readyBox.append(h('div', { class: 'empty' }, 'No samples yet: the HTTP process reads the queue every ' + q.interval_s + ' s.'));
        return;
      }
      plots.push(new uPlot(opts('ready', series, width), [q.t].concat(series.map(function (s) { return s.ready; })), readyBox));
      plots.push(new uPlot(opts('age', series, width), [q.t].concat(series.map(function (s) { return s.oldest_s; })), ageBox));
      note.textContent = q.t.length + ' samples, one every ' + q.interval_s + ' s, kept for an hour by the HTTP process ' +
        '(since ' + timeFmt.format(new Date(q.t[0] * 1000)) + '). Workflows with an empty queue all along are left out.';
    }

    function load() {
      return getJSON('/queue').then(function (q) { if (view === me) draw(q); },
        function (e) { if (view === me) readyBox.replaceChildren(errorBox(e)); });
    }
    var poll = every(load, STATS_REFRESH_MS);
    load().then(function () { if (view === me) poll.start(me); });
  }

  /* ---- start -------------------------------------------------------------------------------- */

  document.getElementById('token-btn').addEventListener('click', function () { askToken(); });
  getJSON('/config').then(function (c) { config = c; }, function () { /* read-only until known */ })
    .then(function () { showMode(); route(); });
})();
