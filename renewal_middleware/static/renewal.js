/* renewal.js (renewal_middleware): renews the session while a page stays open, one tab at a
 * time, and adds the CSRF header to same-origin calls. It never sees a token. */
(() => {
  if (window.renewal) return;
  const doc = document, tag = doc.currentScript, F = fetch.bind(window), here = window.origin;
  // /session next to the script (/app/renewal.js -> /app/session), unless data-session says.
  const PATH = (tag && tag.dataset.session)
    || (tag && tag.src ? new URL(tag.src).pathname.replace(/[^/]*$/, 'session') : '/session');
  const STOP = /^(login|interaction|consent|account_selection)_required$/;
  const bc = window.BroadcastChannel && new BroadcastChannel('renewal-middleware');
  let S, skew = 0, timer, busy, fails = 0, stopped, triedExpired, checks = [], othersUntil = 0;

  const emit = (name, detail) => doc.dispatchEvent(new CustomEvent('renewal:' + name, { detail }));
  const post = (m) => bc && bc.postMessage(m);
  const failed = (reason) => {
    fails++;
    emit('failed', { reason });
  };
  const pathOf = (url) => new URL(url, doc.baseURI).pathname;
  const unscheduleRenewal = () => clearTimeout(timer);
  const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

  // Take a session: read here, or a newer one from another tab.
  function adopt(s, via) {
    const p = S || {}, renewed = (p.authenticated || p.expired) && s.authenticated
      && s.expires_at > (p.expires_at || 0);
    if (via == 'other-tab' && !renewed) return;
    S = api.session = s;
    skew = s.now - Date.now() / 1000;
    if (s.authenticated) {
      if (renewed || !p.authenticated) stopped = triedExpired = fails = 0;
      if (renewed) {
        via = via || (s.renewal == 'refresh' && p.renew_at <= s.now ? 'refresh' : 'other-tab');
        emit('renewed', { expires_at: s.expires_at, via });
        if (via != 'other-tab') post({ type: 'session', session: s });
      }
    }
    emit('session', s);
    if (s.authenticated) return scheduleRenewal();
    unscheduleRenewal();
    if (s.expired) triedExpired = triedExpired || renew(); // one iframe may bring it back
    else if (p.authenticated || p.expired) {
      emit('logged-out');
      post({ type: 'check' });
    }
  }

  async function read(via) {
    try {
      const r = await F(PATH, { credentials: 'same-origin', cache: 'no-store' });
      const s = r.ok && await r.json();
      if (s) adopt(s, via);
      return s;
    } catch (e) {}
  }

  // One timer at renew_at (server clock) plus a little jitter, or at the next retry.
  function scheduleRenewal() {
    unscheduleRenewal();
    if (!S || !S.authenticated || !S.renew_at || stopped) return;
    const now = Date.now() / 1000 + skew;
    let delay = Math.max(0, S.renew_at - now)
      + Math.random() * Math.min(1, (S.expires_at - S.renew_at) / 5);
    if (fails) {
      delay = [2, 5, 15, 30, 60][Math.min(fails, 5) - 1] * (0.9 + Math.random() / 5);
      if (now + delay >= S.expires_at) return; // the token is gone by then
    }
    timer = setTimeout(renew, delay * 1000, false);
  }

  // Without Web Locks: after a random back-off a tab claims the renewal on the channel unless
  // another one is at it; the lowest claim wins. The others wait until the winner is done
  // (12 s at most), then look at /session themselves.
  async function claimed(fn) {
    const mine = Math.random();
    let lost = 0;
    const on = ({ data: d }) => { if (d.type == 'claim' && d.r < mine) lost = 1; };
    bc.addEventListener('message', on);
    await sleep(mine * 400);
    if (Date.now() < othersUntil) lost = 1;
    else if (!lost) post({ type: 'claim', r: mine });
    await sleep(150);
    bc.removeEventListener('message', on);
    if (lost) {
      while (Date.now() < othersUntil) await sleep(100);
      return fn();
    }
    othersUntil = 0;
    try {
      return await fn();
    } finally {
      post({ type: 'done' });
    }
  }

  // Renew now, or (from the timer) only if no other tab or request did it meanwhile.
  function renew(force = true) {
    const run = () => attempt(force);
    return busy = busy || (navigator.locks
      ? navigator.locks.request('renewal-middleware:' + here, run) : bc ? claimed(run) : run())
      .catch(() => failed('network')).finally(() => {
        busy = 0;
        scheduleRenewal();
      });
  }

  async function attempt(force) {
    const before = S || {}, s = await read(); // the cookie jar is shared: renewed already?
    if (!s) return failed('network');
    if (s.authenticated) {
      if (s.expires_at > before.expires_at) return;
      if (s.renew_at > s.now && !(force && s.renewal == 'iframe')) return;
      if (s.renewal == 'refresh') return failed('provider_unavailable');
    } else if (!s.expired || s.renewal == 'refresh') return;
    const answer = await iframe(s.silent_url);
    if (answer.ok) return (await read('iframe')) || failed('network');
    if (!STOP.test(answer.error)) return failed(answer.error || 'unknown');
    // The provider session is gone (the server ended ours): say so once and stop.
    stopped = 1;
    emit('failed', { reason: answer.error });
    const after = await read();
    if (!after || after.authenticated) {
      unscheduleRenewal();
      emit('logged-out');
    }
  }

  // A hidden iframe on silent_url (prompt=none) whose last page posts the outcome to us.
  const iframe = (url) => new Promise((done) => {
    const frame = doc.createElement('iframe');
    const end = (answer) => {
      clearTimeout(timeout);
      removeEventListener('message', on);
      frame.remove();
      done(answer);
    };
    const on = ({ origin, source, data: d }) => origin == here && source == frame.contentWindow
      && d && d.type == 'renewal_middleware:silent' && end(d);
    const timeout = setTimeout(end, 1e4, { ok: false, error: 'timeout' });
    addEventListener('message', on);
    frame.hidden = true;
    frame.src = url;
    doc.body.append(frame);
  });

  async function rfetch(input, init) {
    const req = input instanceof Request;
    const same = new URL(req ? input.url : input, doc.baseURI).origin == here;
    if (same) {
      if (!S) await api.ready;
      const h = S.csrf_header;
      if (h) {
        const headers = new Headers((init && init.headers) || (req ? input.headers : {}));
        headers.set(h.name, h.value);
        init = { ...init, headers };
      }
    }
    const r = await F(input, init);
    if (same && r.status == 401) read();
    return r;
  }

  async function logout() {
    if (!S) await api.ready;
    post({ type: 'check' });
    unscheduleRenewal();
    location.assign(S.logout_url || '/logout');
  }

  bc && bc.addEventListener('message', ({ data: d }) => {
    if (d.type == 'claim') othersUntil = Date.now() + 12e3; // another tab renews
    if (d.type == 'session' || d.type == 'done') othersUntil = 0;
    if (d.type == 'session') adopt(d.session, 'other-tab');
    if (d.type == 'check') { // another tab logs out: look while its logout completes
      checks.forEach(clearTimeout);
      checks = [300, 1e3, 3e3].map((ms) => setTimeout(read, ms));
    }
  });
  doc.addEventListener('visibilitychange', () => doc.hidden || read());
  doc.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a[href]');
    if (a && S && S.logout_url && pathOf(a.href) == pathOf(S.logout_url)) post({ type: 'check' });
  }, true);

  const first = () => read().then((s) => s || sleep(3e3).then(first));
  const api = window.renewal = {
    session: null, scheduleRenewal, unscheduleRenewal, renew, fetch: rfetch, logout,
    ready: first(),
  };
  if (tag && tag.hasAttribute('data-patch-fetch')) {
    window.fetch = (input, init) => /^(GET|HEAD|OPTIONS|TRACE)$/i.test(
      (init && init.method) || input.method || 'GET') ? F(input, init) : rfetch(input, init);
  }
})();
