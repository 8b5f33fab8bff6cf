// lookalike's search page: plain JavaScript over HTTP API v1 of the node
// that served it (docs/api.md). No framework, no build step.
(() => {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const el = {
    cluster: $('cluster'), collection: $('collection'), k: $('k'), key: $('key'),
    refresh: $('refresh'), stats: $('stats'), drop: $('drop'), file: $('file'),
    byId: $('by-id'), id: $('id'), query: $('query'), queryImg: $('query-img'),
    queryCaption: $('query-caption'), error: $('error'), status: $('status'), results: $('results'),
  };

  // Settings kept in this browser.
  const saved = {
    get(name) { try { return localStorage.getItem('lookalike.' + name); } catch { return null; } },
    set(name, v) {
      try {
        if (v) localStorage.setItem('lookalike.' + name, v);
        else localStorage.removeItem('lookalike.' + name);
      } catch { /* storage disabled: settings last for this page only */ }
    },
  };

  let current = null; // the chosen collection, as GET /v1/collections/{c} describes it
  let seq = 0; // the latest search; answers to older ones are dropped
  let blobs = []; // object URLs to revoke when the grid is redrawn
  let queryBlob = null;

  class APIError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // api calls the API (a path relative to the page), with the read key when
  // one is set, and returns the decoded JSON or throws an APIError carrying
  // the API's error shape {"error":{"code","message"}}.
  async function api(method, path, body) {
    const init = { method, headers: authHeaders() };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers.set('Content-Type', 'application/json');
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new APIError(0, 'network', 'cannot reach the server (' + e.message + ')');
    }
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (!resp.ok) {
      const e = data && data.error;
      if (e && e.code) throw new APIError(resp.status, e.code, e.message || '');
      throw new APIError(resp.status, 'http ' + resp.status, text.trim().slice(0, 300) || resp.statusText);
    }
    return data;
  }

  function authHeaders() {
    const h = new Headers();
    const key = el.key.value.trim();
    if (key) h.set('Authorization', 'Bearer ' + key);
    return h;
  }

  const collPath = (c) => 'v1/collections/' + encodeURIComponent(c);
  const thumbPath = (c, id) => collPath(c) + '/items/' + encodeURIComponent(id) + '/thumbnail';

  const hints = {
    unauthorized: 'This node needs a key for reads: enter it in “Read key”.',
    too_large: 'The image is larger than this node accepts.',
    overloaded: 'The node is busy: try again in a moment.',
    unavailable: 'Part of the cluster is unavailable: try again in a moment.',
  };

  function showError(err) {
    const code = err.code || 'error';
    el.error.replaceChildren();
    const c = document.createElement('code');
    c.textContent = code;
    el.error.append(c, ': ' + (err.message || String(err)));
    if (hints[code]) el.error.append(' ' + hints[code]);
    el.error.hidden = false;
  }

  function clearError() {
    el.error.hidden = true;
    el.error.replaceChildren();
  }

  // Cluster and collection stats.

  async function loadCluster() {
    try {
      const c = await api('GET', 'v1/cluster');
      const nodes = c.nodes || [];
      const alive = nodes.filter((n) => n.state === 'alive').length;
      const dot = document.createElement('span');
      dot.className = 'dot' + (alive === nodes.length && c.leader ? '' : ' warn');
      dot.setAttribute('aria-hidden', 'true');
      const plural = (n, w) => n + ' ' + w + (n === 1 ? '' : 's');
      el.cluster.replaceChildren(dot,
        `${plural(nodes.length, 'node')} (${alive} alive) · leader ${c.leader || 'none'} · ${plural((c.shards || []).length, 'shard')}`);
    } catch (e) {
      el.cluster.textContent = 'cluster: ' + e.code;
    }
  }

  async function loadCollections(wanted) {
    const list = (await api('GET', 'v1/collections')).collections || [];
    el.collection.replaceChildren();
    for (const c of list) {
      const o = document.createElement('option');
      o.value = c.name;
      o.textContent = c.name + (c.model ? '' : ' (vectors)');
      el.collection.append(o);
    }
    if (list.length === 0) {
      const o = document.createElement('option');
      o.textContent = 'no collections yet';
      el.collection.append(o);
      el.collection.disabled = true;
      current = null;
      renderStats();
      return;
    }
    el.collection.disabled = false;
    const pick = [wanted, saved.get('collection')].find((n) => n && list.some((c) => c.name === n));
    el.collection.value = pick || list[0].name;
    current = list.find((c) => c.name === el.collection.value);
    renderStats();
  }

  async function refreshStats() {
    if (!current) return;
    try {
      current = await api('GET', collPath(current.name));
      renderStats();
    } catch (e) {
      showError(e);
    }
  }

  function renderStats() {
    el.stats.replaceChildren();
    if (!current) return;
    const c = current;
    const nlist = c.trained_nlist ? `${c.trained_nlist} (${c.nlist === 'auto' ? 'auto' : 'set'})` : String(c.nlist);
    const rows = [
      ['items', Number(c.count).toLocaleString('en')],
      ['state', c.state],
      ['model', c.model || 'none (vectors)'],
      ['dim', c.dim],
      ['metric', c.metric],
      ['nlist', nlist],
      ['replicas', c.replicas],
      ['epoch', c.epoch],
    ];
    for (const [k, v] of rows) {
      const d = document.createElement('div');
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = k;
      dd.textContent = v;
      dd.dataset.stat = k;
      d.append(dt, dd);
      el.stats.append(d);
    }
  }

  // Searching.

  function kValue() {
    const k = Math.round(Number(el.k.value));
    return Number.isFinite(k) && k >= 1 ? Math.min(k, 1024) : 10;
  }

  // search runs one query: {file} (an uploaded image) or {id} (a stored
  // item). push says whether it becomes a new history entry.
  async function search(q, push) {
    if (!current) {
      showError(new APIError(0, 'no collection', 'choose a collection first'));
      return;
    }
    const my = ++seq;
    const c = current.name;
    const k = kValue();
    clearError();
    showQuery(q, c);
    el.results.setAttribute('aria-busy', 'true');
    el.status.textContent = 'Searching…';
    let res;
    try {
      if (q.file) {
        const form = new FormData();
        form.append('k', String(k)); // before the file: the server reads fields in order
        form.append('file', q.file, q.file.name || 'pasted-image');
        res = await api('POST', collPath(c) + '/search', form);
      } else {
        res = await api('POST', collPath(c) + '/search', { id: q.id, k });
      }
    } catch (e) {
      if (my !== seq) return;
      el.results.removeAttribute('aria-busy');
      el.status.textContent = '';
      showError(e);
      return;
    }
    if (my !== seq) return;
    if (q.id) {
      const url = '#c=' + encodeURIComponent(c) + '&id=' + encodeURIComponent(q.id) + '&k=' + k;
      if (push) history.pushState(null, '', url);
      else history.replaceState(null, '', url);
    }
    renderHits(res, c);
    refreshStats();
  }

  function showQuery(q, c) {
    if (queryBlob) URL.revokeObjectURL(queryBlob);
    queryBlob = null;
    el.query.hidden = false;
    if (q.file) {
      queryBlob = URL.createObjectURL(q.file);
      el.queryImg.hidden = false;
      el.queryImg.src = queryBlob;
      el.queryImg.alt = 'Query image ' + (q.file.name || '(pasted)');
      el.queryCaption.textContent = q.file.name || 'pasted image';
    } else {
      el.queryCaption.textContent = 'item ' + q.id;
      el.queryImg.alt = 'Query: item ' + q.id;
      el.queryImg.removeAttribute('src');
      el.queryImg.hidden = !(current && current.model);
      if (!el.queryImg.hidden) setThumb(el.queryImg, c, q.id, null);
    }
  }

  function fmtScore(s) {
    const a = Math.abs(s);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return s.toExponential(3);
    return s.toFixed(a >= 100 ? 1 : 4);
  }

  function renderHits(res, c) {
    for (const u of blobs) URL.revokeObjectURL(u);
    blobs = [];
    const hits = res.hits || [];
    const images = !!(current && current.model);
    const what = current && current.metric === 'l2' ? 'distance' : 'similarity';
    const items = hits.map((h, i) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'hit';
      b.dataset.id = h.id;
      b.title = 'Search for items like ' + h.id;
      const thumb = document.createElement('span');
      thumb.className = 'thumb';
      const rank = document.createElement('span');
      rank.className = 'rank';
      rank.textContent = i + 1;
      if (images) {
        const img = document.createElement('img');
        img.alt = 'Thumbnail of ' + h.id;
        img.decoding = 'async';
        setThumb(img, c, h.id, thumb);
        thumb.append(img);
      } else {
        thumb.classList.add('none');
        thumb.dataset.initial = (h.id[0] || '?').toUpperCase();
      }
      thumb.append(rank);
      const cap = document.createElement('span');
      cap.className = 'cap';
      const id = document.createElement('span');
      id.className = 'id';
      id.textContent = h.id;
      const score = document.createElement('span');
      score.className = 'score';
      score.textContent = what + ' ' + fmtScore(h.score);
      cap.append(id, score);
      b.append(thumb, cap);
      b.addEventListener('click', () => search({ id: h.id }, true));
      li.append(b);
      return li;
    });
    el.results.classList.toggle('vectors', !images);
    el.results.replaceChildren(...items);
    el.results.removeAttribute('aria-busy');
    let s = `${hits.length} result${hits.length === 1 ? '' : 's'} in ${Number(res.took_ms).toFixed(1)} ms`;
    if (res.partial) s += ` — partial: no live replica for ${(res.missing_shards || []).join(', ') || 'some shards'}`;
    el.status.textContent = s;
  }

  // setThumb loads an item's thumbnail into img: by URL when no key is set
  // (the browser caches it), otherwise fetched with the key as a blob. A
  // thumbnail that fails to load leaves the tile's initial in its place.
  function setThumb(img, c, id, tile) {
    const failed = () => {
      if (!tile) { img.hidden = true; return; }
      img.remove();
      tile.classList.add('none');
      tile.dataset.initial = (id[0] || '?').toUpperCase();
    };
    if (tile) img.addEventListener('error', failed, { once: true });
    if (!el.key.value.trim()) {
      img.src = thumbPath(c, id);
      return;
    }
    fetch(thumbPath(c, id), { headers: authHeaders() })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.status))))
      .then((b) => {
        const u = URL.createObjectURL(b);
        if (img === el.queryImg) {
          if (queryBlob) URL.revokeObjectURL(queryBlob);
          queryBlob = u;
        } else {
          blobs.push(u);
        }
        img.src = u;
      })
      .catch(failed);
  }

  function imageFrom(list) {
    for (const f of list || []) {
      if (f && f.type && f.type.startsWith('image/')) return f;
    }
    return null;
  }

  // The page's state in its address: #c=COLLECTION&id=ID&k=K.
  function fromHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    return { c: p.get('c'), id: p.get('id'), k: p.get('k') };
  }

  async function applyHash() {
    const h = fromHash();
    if (h.k) el.k.value = h.k;
    if (h.c && current && h.c !== current.name && [...el.collection.options].some((o) => o.value === h.c)) {
      el.collection.value = h.c;
      await chooseCollection();
    }
    if (h.id) {
      el.id.value = h.id;
      search({ id: h.id }, false);
    }
  }

  async function chooseCollection() {
    saved.set('collection', el.collection.value);
    current = { name: el.collection.value };
    el.results.replaceChildren();
    el.status.textContent = '';
    el.query.hidden = true;
    clearError();
    await refreshStats();
  }

  async function reload() {
    clearError();
    loadCluster();
    try {
      await loadCollections(fromHash().c || (current && current.name));
    } catch (e) {
      el.collection.replaceChildren(new Option('—'));
      el.collection.disabled = true;
      current = null;
      renderStats();
      showError(e);
    }
  }

  // Wiring.

  el.key.value = saved.get('key') || '';
  el.k.value = saved.get('k') || el.k.value;
  el.key.addEventListener('change', () => {
    saved.set('key', el.key.value.trim());
    reload();
  });
  el.k.addEventListener('change', () => saved.set('k', String(kValue())));
  el.collection.addEventListener('change', chooseCollection);
  el.refresh.addEventListener('click', () => reload());
  el.file.addEventListener('change', () => {
    const f = imageFrom(el.file.files);
    if (f) search({ file: f }, false);
    el.file.value = ''; // choosing the same file again searches again
  });
  el.byId.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = el.id.value.trim();
    if (id) search({ id }, true);
  });

  // Drop anywhere on the page; the zone lights up while a drag is over it.
  let depth = 0;
  document.addEventListener('dragenter', (ev) => {
    ev.preventDefault();
    if (depth++ === 0) el.drop.classList.add('over');
  });
  document.addEventListener('dragleave', () => {
    if (--depth <= 0) { depth = 0; el.drop.classList.remove('over'); }
  });
  document.addEventListener('dragover', (ev) => ev.preventDefault());
  document.addEventListener('drop', (ev) => {
    ev.preventDefault();
    depth = 0;
    el.drop.classList.remove('over');
    const f = imageFrom(ev.dataTransfer && ev.dataTransfer.files);
    if (f) search({ file: f }, false);
    else showError(new APIError(0, 'not an image', 'drop an image file (JPEG, PNG, GIF, WebP, BMP)'));
  });
  document.addEventListener('paste', (ev) => {
    const items = ev.clipboardData ? [...ev.clipboardData.items] : [];
    const f = imageFrom(items.filter((i) => i.kind === 'file').map((i) => i.getAsFile()));
    if (!f) return; // text pastes into the fields as usual
    ev.preventDefault();
    search({ file: f }, false);
  });
  window.addEventListener('popstate', applyHash);
  el.queryImg.addEventListener('error', () => { if (el.queryImg.getAttribute('src')) el.queryImg.hidden = true; });

  reload().then(applyHash);
})();
