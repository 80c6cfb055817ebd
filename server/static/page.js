// podcite's only script: play a moment in place, copy a citation.
// Everything else on the page works without it; without it the play control is
// the time link (a deep link to the second) and the citation is selectable text.
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

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button.play, button.copy").forEach(function (b) {
      b.hidden = false;
    });
    document.addEventListener("click", function (e) {
      var b = e.target.closest("button.play, button.copy");
      if (!b) { return; }
      if (b.classList.contains("play")) { play(b); } else { copy(b); }
    });
  });
})();
