// podcite's only script: play a moment in place, copy a citation, open a
// result's context in place, and fill the episode picker on a results page.
// Everything else on the page works without it; without it the play control is
// the time link (a deep link to the second), the citation is selectable text,
// a context opens on its own page (the link inside "Around this moment") and
// the episode field takes a title, #number or id as typed.
// Nothing external loads until a play button is clicked.
"use strict";
(function () {
  var EMBED = "https://www.youtube-nocookie.com/embed/";

  function play(button) {
    var frame = document.createElement("iframe");
    var start = parseInt(button.getAttribute("data-start"), 10) || 0;
    frame.src = EMBED + encodeURIComponent(button.getAttribute("data-video")) +
      "?start=" + start + "&autoplay=1";
    frame.title = "Episode player";
    frame.className = "yt";
    frame.allow = "autoplay; encrypted-media; picture-in-picture";
    frame.referrerPolicy = "strict-origin-when-cross-origin";
    frame.setAttribute("allowfullscreen", "");
    button.replaceWith(frame);
  }

  function copy(button) {
    var text = button.parentNode.querySelector(".cite-text").textContent;
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { select(button, done); });
    } else {
      select(button, done);
    }
  }

  function select(button, done) {  // older browsers and plain-http hosts
    var range = document.createRange();
    range.selectNodeContents(button.parentNode.querySelector(".cite-text"));
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    if (document.execCommand("copy")) { done(); }
  }

  // The context page's list, fetched into the opened <details> (same origin;
  // DOMParser runs no script).  On any failure the link stays: it still works.
  function expand(details) {
    var holder = details.querySelector(".context-link");
    var link = holder && holder.querySelector("a");
    if (!link || details.getAttribute("aria-busy")) { return; }
    details.setAttribute("aria-busy", "true");
    fetch(link.href, { headers: { Accept: "text/html" } }).then(function (r) {
      if (!r.ok) { throw new Error("context: HTTP " + r.status); }
      return r.text();
    }).then(function (html) {
      var list = new DOMParser().parseFromString(html, "text/html").querySelector("ol.context");
      if (!list) { throw new Error("context: no list"); }
      holder.replaceWith(document.importNode(list, true));
    }).catch(function () { /* the link is still there */ }).then(function () {
      details.removeAttribute("aria-busy");
    });
  }

  // The home page carries the episode list; a results page builds the same
  // labels ("#N Title (date)", server/pages.episode_label) from /api/episodes
  // the first time the field is used.
  function fillEpisodes(list) {
    if (list.options.length || list.getAttribute("aria-busy")) { return; }
    list.setAttribute("aria-busy", "true");
    fetch("/api/episodes").then(function (r) { return r.json(); }).then(function (body) {
      body.episodes.forEach(function (e) {
        var option = document.createElement("option");
        option.value = (e.number !== null ? "#" + e.number + " " : "") + e.title +
          (e.date ? " (" + e.date + ")" : "");
        list.appendChild(option);
      });
    }).catch(function () { /* the field still takes what is typed */ }).then(function () {
      list.removeAttribute("aria-busy");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button.play, button.copy").forEach(function (b) {
      b.hidden = false;
    });
    document.addEventListener("click", function (e) {
      var b = e.target.closest("button.play, button.copy");
      if (!b) { return; }
      if (b.classList.contains("play")) { play(b); } else { copy(b); }
    });
    document.addEventListener("toggle", function (e) {  // toggle does not bubble
      var d = e.target;
      if (d.open && d.matches && d.matches("details.around")) { expand(d); }
    }, true);
    var field = document.getElementById("episode");
    var list = document.getElementById("episode-list");
    if (field && list) {
      field.addEventListener("focus", function () { fillEpisodes(list); });
    }
  });
})();
