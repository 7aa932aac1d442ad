// echotrace review console: progressive enhancement only. Every action is a
// plain HTML form that works without this script; the script adds keyboard
// shortcuts, one-at-a-time media reveal and the undo countdown.
(function () {
  "use strict";

  function typing(e) {
    var t = e.target;
    if (!t || !t.tagName) return false;
    var n = t.tagName.toLowerCase();
    return n === "input" || n === "textarea" || n === "select" || t.isContentEditable;
  }

  // ----- media reveal: one item at a time ---------------------------------
  function hideAll(except) {
    document.querySelectorAll(".media.revealed").forEach(function (m) {
      if (m !== except) {
        m.classList.remove("revealed");
        var b = document.querySelector('[data-reveal="' + m.id + '"]');
        if (b) { b.setAttribute("aria-pressed", "false"); b.textContent = "Reveal media"; }
      }
    });
  }
  function toggleReveal(button) {
    var m = document.getElementById(button.getAttribute("data-reveal"));
    if (!m) return;
    var show = !m.classList.contains("revealed");
    hideAll(m);
    m.classList.toggle("revealed", show);
    button.setAttribute("aria-pressed", show ? "true" : "false");
    button.textContent = show ? "Hide media" : "Reveal media";
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest ? e.target.closest("[data-reveal]") : null;
    if (b) { e.preventDefault(); toggleReveal(b); }
  });

  // ----- queue keyboard navigation ---------------------------------------
  function cards() { return Array.prototype.slice.call(document.querySelectorAll(".card[data-match]")); }
  function current() { return document.querySelector(".card.current") || cards()[0] || null; }
  function select(card) {
    cards().forEach(function (c) { c.classList.remove("current"); });
    if (card) { card.classList.add("current"); card.focus(); card.scrollIntoView({ block: "nearest" }); }
  }
  function move(d) {
    var cs = cards(); if (!cs.length) return;
    var i = cs.indexOf(current()); i = Math.max(0, Math.min(cs.length - 1, i + d));
    select(cs[i]);
  }
  function press(card, sel) {
    if (!card) return;
    var b = card.querySelector(sel);
    if (b && !b.disabled) b.click();
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    var k = e.key;
    var c = current();
    if (k === "?") {
      var h = document.getElementById("shortcuts"); if (h) { h.hidden = !h.hidden; } e.preventDefault(); return;
    }
    if (!cards().length) return;
    if (k === "j") { move(1); e.preventDefault(); }
    else if (k === "k") { move(-1); e.preventDefault(); }
    else if (k === "c") { press(c, "button[value=confirm]"); e.preventDefault(); }
    else if (k === "r") { press(c, "button[value=reject]"); e.preventDefault(); }
    else if (k === "u") { press(c, "button.undo-btn"); e.preventDefault(); }
    else if (k === "v") { press(c, "[data-reveal]"); e.preventDefault(); }
    else if (k === "x") {
      var box = c && c.querySelector("input[type=checkbox][name=ids]");
      if (box) { box.checked = !box.checked; } e.preventDefault();
    }
  });

  // Select-all boxes of a group (items matching the same bank item).
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t && t.hasAttribute && t.hasAttribute("data-group-all")) {
      document.querySelectorAll('input[name=ids][data-group="' + t.getAttribute("data-group-all") + '"]')
        .forEach(function (b) { b.checked = t.checked; });
    }
  });

  // ----- undo countdown ---------------------------------------------------
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-publish-at]").forEach(function (el) {
      var left = Math.ceil((parseInt(el.getAttribute("data-publish-at"), 10) - now) / 1000);
      var out = el.querySelector(".countdown");
      if (left > 0) { if (out) out.textContent = left + " s"; }
      else {
        if (out) out.textContent = "published";
        var b = el.querySelector("button.undo-btn"); if (b) b.disabled = true;
      }
    });
  }
  if (document.querySelector("[data-publish-at]")) { tick(); setInterval(tick, 500); }

  var first = document.querySelector(".card[data-match]");
  if (first && !document.querySelector(".card.current")) first.classList.add("current");
})();
