/* shop_recs tracker: clicks, cart adds and recent views -> POST /api/v1/track/. No deps.
   <script src=".../track.js" data-endpoint="/api/v1/track/" defer></script>
   Marks: data-shop-recs-click="ID", data-shop-recs-cart="ID", <meta name="shop-recs-item"
   content="ID"> (kept in localStorage; data-track-views on the script tag also sends a view).
   Inside a served list (data-shop-recs-list) the list id and data-shop-recs-position go too. */
(function () {
  "use strict";
  var me = document.currentScript || document.querySelector("script[data-endpoint]") || {};
  var opt = (me.dataset) || {};
  var endpoint = opt.endpoint || "/api/v1/track/";
  var cookieName = opt.csrfCookie || "csrftoken";
  var KEY = "shop_recs_recent";

  function csrf() {
    var m = document.cookie.match("(?:^|; )" + cookieName + "=([^;]*)");
    return m ? decodeURIComponent(m[1]) : "";
  }

  function send(events) {
    try {
      if (!events.length || !window.fetch) return;
      var headers = { "Content-Type": "application/json" };
      var token = csrf();
      if (token) headers["X-CSRFToken"] = token;
      fetch(endpoint, {
        method: "POST", keepalive: true, credentials: "same-origin", headers: headers,
        body: JSON.stringify(events.length === 1 ? events[0] : { events: events })
      }).catch(function () {});
    } catch (e) { /* tracking never breaks the page */ }
  }

  function track(event, id) { if (id) send([{ event: event, item_id: String(id) }]); }

  function fromList(event, el, attr) {
    var e = { event: event, item_id: el.getAttribute(attr) }, l = "data-shop-recs-list";
    var at = el.closest("[" + l + "]"), id = at && at.getAttribute(l);
    if (id && /^[0-9a-f]{32}$/.test(id)) {
      e.list_id = id;
      at = el.closest("[data-shop-recs-position]");
      var p = at && parseInt(at.getAttribute("data-shop-recs-position"), 10);
      if (p >= 1 && p <= 1000) e.position = p;
    }
    return e;
  }

  document.addEventListener("click", function (ev) {
    try {
      var t = ev.target, events = [];
      var el = t && t.closest && t.closest("[data-shop-recs-click]");
      if (el) events.push(fromList("click", el, "data-shop-recs-click"));
      el = t && t.closest && t.closest("[data-shop-recs-cart]");
      if (el) events.push(fromList("cart", el, "data-shop-recs-cart"));
      send(events.filter(function (e) { return e.item_id; }));
    } catch (e) { /* ignore */ }
  }, true);

  try {
    var meta = document.querySelector('meta[name="shop-recs-item"]');
    var id = meta && meta.getAttribute("content");
    if (id) {
      var list = [];
      try { list = JSON.parse(localStorage.getItem(KEY) || "[]") || []; } catch (e) { list = []; }
      list = list.filter(function (x) { return x !== id; }).concat([id]).slice(-50);
      try { localStorage.setItem(KEY, JSON.stringify(list)); } catch (e) { /* full, private */ }
      if ("trackViews" in opt) track("view", id);
    }
  } catch (e) { /* ignore */ }

  window.ShopRecsTrack = { track: track, send: send };
})();
