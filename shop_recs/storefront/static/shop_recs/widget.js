/* shop_recs widgets: fill containers from the REST API. No dependencies, no build step.

   <div data-shop-recs="similar" data-item-id="SKU-1" data-k="8"></div>
   <div data-shop-recs="recommended" data-k="8"></div>
   <script src=".../widget.js" data-api="/api/v1/" defer></script>

   Container options: data-k (1-100, default 8), data-space (similar: text|image|content|hybrid),
   data-title (a heading), data-currency (ISO code: prices formatted for the page's language),
   data-customer-id (recommended: the logged-in shopper's own customer id; else the items in
   localStorage "shop_recs_recent", which track.js keeps, are the history).
   Script tag options: data-api (the API's base URL), data-csrf-cookie (default csrftoken).

   A filled container carries the served list's id (data-shop-recs-list; with an experiment,
   data-shop-recs-experiment and data-shop-recs-arm) and each item its place
   (data-shop-recs-position): track.js sends both with clicks and cart adds.
   Each container ends with data-shop-recs-state = "ready", "empty" (nothing to show, or the
   item is not encoded yet) or "error" (left empty), and fires a bubbling "shop-recs:done"
   event. Text is set with textContent, links only when http(s) or site-relative: data from
   the API never becomes markup. window.ShopRecs.fill(container) refills one (e.g. after a
   client-side page change); ShopRecs.init(root) fills every container under root. */
(function () {
  "use strict";
  var me = document.currentScript || document.querySelector("script[data-api]") || {};
  var opt = me.dataset || {};
  var api = (opt.api || "/api/v1/").replace(/\/?$/, "/");
  var cookieName = opt.csrfCookie || "csrftoken";

  function csrf() {
    var m = document.cookie.match("(?:^|; )" + cookieName + "=([^;]*)");
    return m ? decodeURIComponent(m[1]) : "";
  }

  function recent() {
    try {
      var list = JSON.parse(localStorage.getItem("shop_recs_recent") || "[]");
      return Array.isArray(list)
        ? list.filter(function (x) { return typeof x === "string" && x; }).slice(-50)
        : [];
    } catch (e) {
      return [];
    }
  }

  function safeUrl(url) {
    return typeof url === "string" && /^(https?:\/\/|\/(?!\/))/i.test(url) ? url : "";
  }

  function count(el) {
    var k = parseInt(el.getAttribute("data-k") || "8", 10);
    return k >= 1 && k <= 100 ? k : 8;
  }

  function query(el) {
    var kind = el.getAttribute("data-shop-recs");
    var headers = { Accept: "application/json" };
    if (kind === "similar") {
      var id = el.getAttribute("data-item-id");
      if (!id) throw new Error("data-item-id is missing");
      var url = api + "items/" + encodeURIComponent(id) + "/similar/?k=" + count(el);
      var space = el.getAttribute("data-space");
      if (space) url += "&space=" + encodeURIComponent(space);
      return fetch(url, { credentials: "same-origin", headers: headers });
    }
    if (kind === "recommended") {
      var body = { k: count(el), recent_item_ids: recent() };
      var customer = el.getAttribute("data-customer-id");
      if (customer) body.customer_id = customer;
      headers["Content-Type"] = "application/json";
      var token = csrf();
      if (token) headers["X-CSRFToken"] = token;
      return fetch(api + "recommendations/", {
        method: "POST", credentials: "same-origin", headers: headers, body: JSON.stringify(body)
      });
    }
    throw new Error("unknown widget " + kind);
  }

  function price(value, currency) {
    if (typeof value !== "number") return "";
    if (currency) {
      try {
        return new Intl.NumberFormat(document.documentElement.lang || undefined, {
          style: "currency", currency: currency
        }).format(value);
      } catch (e) { /* unknown currency code: plain number */ }
    }
    return value.toFixed(2);
  }

  function node(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text) el.textContent = text;
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function tag(el, data) {
    // the served list's id (track.js sends it with clicks), and its experiment's arm
    var names = ["list", "experiment", "arm"];
    var values = [data.list_id, data.experiment, data.arm];
    for (var i = 0; i < names.length; i++) {
      var value = values[i];
      if (typeof value === "string" && value) el.setAttribute("data-shop-recs-" + names[i], value);
      else el.removeAttribute("data-shop-recs-" + names[i]);
    }
  }

  function render(el, results) {
    var list = node("ul", "shop-recs-list");
    var currency = el.getAttribute("data-currency");
    results.forEach(function (r, index) {
      var item = r.item || {};
      var li = node("li", "shop-recs-item");
      li.setAttribute("data-item-id", String(item.external_id || ""));
      li.setAttribute("data-shop-recs-position", String(index + 1));
      var box = li;
      var href = safeUrl(item.url);
      if (href) {
        box = node("a", "shop-recs-link");
        box.setAttribute("href", href);
        box.setAttribute("data-shop-recs-click", String(item.external_id || ""));
        li.appendChild(box);
      }
      var src = safeUrl(item.image);
      if (src) {
        var img = node("img", "shop-recs-image");
        img.setAttribute("src", src);
        img.setAttribute("alt", String(item.title || ""));
        img.setAttribute("loading", "lazy");
        box.appendChild(img);
      }
      box.appendChild(node("span", "shop-recs-title", String(item.title || "")));
      var shown = price(item.price, currency);
      if (shown) box.appendChild(node("span", "shop-recs-price", shown));
      if (r.reason) li.appendChild(node("span", "shop-recs-reason", String(r.reason)));
      list.appendChild(li);
    });
    clear(el);
    var title = el.getAttribute("data-title");
    if (title) el.appendChild(node("h2", "shop-recs-heading", title));
    el.appendChild(list);
  }

  function done(el, state) {
    if (state !== "ready") clear(el);
    el.setAttribute("data-shop-recs-state", state);
    try {
      el.dispatchEvent(new CustomEvent("shop-recs:done", { bubbles: true, detail: state }));
    } catch (e) { /* very old browsers */ }
  }

  function fill(el) {
    try {
      el.setAttribute("data-shop-recs-state", "loading");
      return query(el)
        .then(function (response) {
          if (response.status === 409) return null; // not encoded yet: nothing to show
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          var results = (data && Array.isArray(data.results) ? data.results : []).filter(
            function (r) {
              // "popular" items with no events at all are not worth a widget
              return r && r.item && !(r.source === "popular" && !(r.score > 0));
            }
          );
          if (!results.length) return done(el, "empty");
          tag(el, data);
          render(el, results);
          done(el, "ready");
        })
        .catch(function () {
          done(el, "error");
        });
    } catch (e) {
      done(el, "error");
      return Promise.resolve();
    }
  }

  function init(root) {
    try {
      var found = (root || document).querySelectorAll("[data-shop-recs]");
      for (var i = 0; i < found.length; i++) fill(found[i]);
    } catch (e) { /* never break the page */ }
  }

  window.ShopRecs = { fill: fill, init: init };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(); });
  } else {
    init();
  }
})();
