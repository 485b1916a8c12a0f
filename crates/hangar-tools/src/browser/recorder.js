// Hangar's session recorder: a small rrweb-compatible event source injected into every page of
// a recorded browser session (Page.addScriptToEvaluateOnNewDocument, and evaluated once in pages
// already open). It emits rrweb events ({type, data, timestamp}) and hands them to Hangar through
// the CDP binding `__hangarRecord` in small batches (JSON arrays).
//
// Rules: it must never break the page. Every entry point is wrapped in try/catch, it installs
// once per document, it records only the top frame (iframes appear as elements), it never
// throws into page code, and it caps the size of what it serializes.
(function () {
  'use strict';
  try {
    if (window.top !== window) return;
    if (window.__hangarRecorder) return;
  } catch (e) {
    return; // cross-origin access to window.top: not the top frame
  }
  var BINDING = '__hangarRecord';
  var MAX_NODES = 50000; // per full snapshot / mutation batch: huge DOMs are cut, not hung on
  var MAX_TEXT = 10000; // characters of one text node or attribute value kept
  var send = window[BINDING]; // taken now: a page may overwrite its globals later
  var stringify = JSON.stringify;
  var ids = new WeakMap();
  var nextId = 1;
  var queue = [];
  var timer = null;
  var started = false;
  var budget = 0;

  function flush() {
    timer = null;
    if (!queue.length) return;
    var f = typeof send === 'function' ? send : window[BINDING];
    if (typeof f !== 'function') {
      timer = setTimeout(flush, 200); // the binding is not installed yet
      return;
    }
    send = f;
    var batch = queue;
    queue = [];
    try {
      f(stringify(batch));
    } catch (e) {}
  }
  function emit(type, data) {
    queue.push({ type: type, data: data, timestamp: Date.now() });
    if (queue.length >= 200) flush();
    else if (!timer) timer = setTimeout(flush, 50);
  }
  function guard(fn) {
    return function (a) {
      try {
        if (started) fn(a);
      } catch (e) {}
    };
  }
  function idOf(n) {
    var i = ids.get(n);
    if (!i) {
      i = nextId++;
      ids.set(n, i);
    }
    return i;
  }
  function clip(s) {
    s = s == null ? '' : String(s);
    return s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) : s;
  }
  function isField(n) {
    var t = n && n.tagName;
    return t === 'INPUT' || t === 'TEXTAREA' || t === 'SELECT';
  }
  // Passwords are masked, as rrweb does by default.
  function fieldValue(n) {
    var v = clip(n.value);
    return (n.type || '').toLowerCase() === 'password' ? v.replace(/./g, '*') : v;
  }
  function kids(n) {
    var out = [];
    for (var c = n.firstChild; c; c = c.nextSibling) {
      var s = ser(c);
      if (s) out.push(s);
    }
    return out;
  }
  // rrweb-snapshot's serialized node: Document 0, DocumentType 1, Element 2, Text 3, CDATA 4,
  // Comment 5, each with its id.
  function ser(n) {
    if (budget-- <= 0) return null;
    var id = idOf(n);
    switch (n.nodeType) {
      case 9:
        return { type: 0, id: id, childNodes: kids(n) };
      case 10:
        return { type: 1, id: id, name: n.name, publicId: n.publicId, systemId: n.systemId };
      case 1: {
        var tag = n.tagName.toLowerCase();
        var attrs = {};
        for (var i = 0; i < n.attributes.length; i++) {
          var a = n.attributes[i];
          attrs[a.name] = clip(a.value);
        }
        if (isField(n)) {
          attrs.value = fieldValue(n);
          if (n.type === 'checkbox' || n.type === 'radio') attrs.checked = !!n.checked;
        }
        var el = { type: 2, id: id, tagName: tag, attributes: attrs, childNodes: kids(n) };
        if (typeof SVGElement !== 'undefined' && n instanceof SVGElement) el.isSVG = true;
        return el;
      }
      case 3: {
        var p = n.parentNode && n.parentNode.tagName;
        if (p === 'SCRIPT') return { type: 3, id: id, textContent: 'SCRIPT_PLACEHOLDER' };
        var t = { type: 3, id: id, textContent: clip(n.textContent) };
        if (p === 'STYLE') t.isStyle = true;
        return t;
      }
      case 4:
        return { type: 4, id: id, textContent: '' };
      case 8:
        return { type: 5, id: id, textContent: clip(n.textContent) };
    }
    return null;
  }
  function snapshot(n) {
    budget = MAX_NODES;
    return ser(n);
  }

  function start() {
    if (started) return;
    started = true;
    emit(4, { href: location.href, width: window.innerWidth, height: window.innerHeight });
    emit(2, {
      node: snapshot(document),
      initialOffset: { left: window.scrollX || 0, top: window.scrollY || 0 },
    });
    new MutationObserver(function (ms) {
      try {
        var adds = [], removes = [], texts = [], attributes = [];
        budget = MAX_NODES;
        for (var i = 0; i < ms.length; i++) {
          var m = ms[i];
          if (m.type === 'characterData') {
            if (ids.has(m.target)) texts.push({ id: ids.get(m.target), value: clip(m.target.textContent) });
          } else if (m.type === 'attributes') {
            if (ids.has(m.target)) {
              var ch = {};
              var val = m.target.getAttribute(m.attributeName);
              if (m.attributeName === 'value' && val != null && (m.target.type || '').toLowerCase() === 'password')
                val = val.replace(/./g, '*');
              ch[m.attributeName] = val;
              attributes.push({ id: ids.get(m.target), attributes: ch });
            }
          } else {
            var parentId = idOf(m.target);
            for (var r = 0; r < m.removedNodes.length; r++) {
              var rn = m.removedNodes[r];
              if (ids.has(rn)) removes.push({ parentId: parentId, id: ids.get(rn) });
            }
            for (var k = 0; k < m.addedNodes.length; k++) {
              var an = m.addedNodes[k];
              if (!an.isConnected) continue;
              var node = ser(an);
              if (!node) continue;
              var next = an.nextSibling;
              adds.push({ parentId: parentId, nextId: next && ids.has(next) ? ids.get(next) : null, node: node });
            }
          }
        }
        if (adds.length || removes.length || texts.length || attributes.length)
          emit(3, { source: 0, texts: texts, attributes: attributes, removes: removes, adds: adds });
      } catch (e) {}
    }).observe(document, { childList: true, subtree: true, attributes: true, characterData: true });
  }

  // Mouse moves: sampled every 50 ms, sent every 500 ms (rrweb's defaults).
  var positions = [], lastMove = 0, moveStart = 0;
  document.addEventListener('mousemove', guard(function (e) {
    var t = Date.now();
    if (t - lastMove < 50) return;
    lastMove = t;
    if (!positions.length) moveStart = t;
    positions.push({ x: e.clientX, y: e.clientY, id: idOf(e.target), timeOffset: t - moveStart });
    if (t - moveStart >= 500) flushMoves();
  }), { capture: true, passive: true });
  function flushMoves() {
    if (!positions.length) return;
    var ps = positions;
    positions = [];
    var base = ps[ps.length - 1].timeOffset;
    for (var i = 0; i < ps.length; i++) ps[i].timeOffset -= base;
    emit(3, { source: 1, positions: ps });
  }
  // rrweb's MouseInteractions: MouseUp 0, MouseDown 1, Click 2, ContextMenu 3, DblClick 4,
  // Focus 5, Blur 6, TouchStart 7, TouchEnd 9.
  var kinds = { mouseup: 0, mousedown: 1, click: 2, contextmenu: 3, dblclick: 4, focus: 5, blur: 6, touchstart: 7, touchend: 9 };
  Object.keys(kinds).forEach(function (name) {
    document.addEventListener(name, guard(function (e) {
      var p = e.touches && e.touches[0] ? e.touches[0] : e;
      emit(3, { source: 2, type: kinds[name], id: idOf(e.target), x: p.clientX || 0, y: p.clientY || 0 });
    }), { capture: true, passive: true });
  });
  var lastScroll = 0;
  document.addEventListener('scroll', guard(function (e) {
    var t = Date.now();
    if (t - lastScroll < 100) return;
    lastScroll = t;
    var tg = e.target;
    if (tg === document || tg === document.documentElement || tg === document.scrollingElement)
      emit(3, { source: 3, id: idOf(document), x: window.scrollX, y: window.scrollY });
    else emit(3, { source: 3, id: idOf(tg), x: tg.scrollLeft, y: tg.scrollTop });
  }), { capture: true, passive: true });
  window.addEventListener('resize', guard(function () {
    emit(3, { source: 4, width: window.innerWidth, height: window.innerHeight });
  }), { passive: true });
  function onInput(e) {
    var tg = e.target;
    if (!isField(tg)) return;
    emit(3, { source: 5, id: idOf(tg), text: fieldValue(tg), isChecked: !!tg.checked });
  }
  document.addEventListener('input', guard(onInput), { capture: true, passive: true });
  document.addEventListener('change', guard(onInput), { capture: true, passive: true });
  window.addEventListener('load', guard(function () { emit(1, {}); }));
  window.addEventListener('pagehide', function () {
    try { flushMoves(); flush(); } catch (e) {}
  });

  try {
    Object.defineProperty(window, '__hangarRecorder', {
      value: { flush: function () { try { flushMoves(); flush(); } catch (e) {} } },
      enumerable: false,
    });
  } catch (e) {}
  if (document.readyState === 'loading')
    document.addEventListener('DOMContentLoaded', function () {
      try { start(); emit(0, {}); } catch (e) {}
    });
  else start();
})();
