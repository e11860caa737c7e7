/* The slip-code keypad (digits only) and the busy screen for plain form posts (follow-up capture, QR scan).
   No libraries; the forms still post without it (the keypad then cannot be typed on, like the PIN pad). */
(function () {
  "use strict";

  var MAX_DIGITS = 9;

  function formatted(digits) {
    return digits.replace(/(\d{3})(?=\d)/g, "$1-");  // 482193677 -> 482-193-677, as on the slip
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-code-form]"), function (form) {
    var value = form.querySelector("[data-code-value]");
    var display = form.querySelector("[data-code-display]");
    var render = function () { if (display) { display.textContent = formatted(value.value); } };
    form.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button) { return; }
      if (button.hasAttribute("data-code-key") && value.value.length < MAX_DIGITS) {
        value.value += button.getAttribute("data-code-key");
      } else if (button.hasAttribute("data-code-delete")) {
        value.value = value.value.slice(0, -1);
      }
      render();
    });
    render();
  });

  var overlay = document.querySelector("[data-busy-overlay]");
  Array.prototype.forEach.call(document.querySelectorAll("[data-busy-form]"), function (form) {
    var sent = false;
    form.addEventListener("submit", function (event) {
      if (sent) { event.preventDefault(); return; }  // a double tap sends one capture
      sent = true;
      var preview = document.querySelector("[data-preview]");
      if (preview) { preview.removeAttribute("src"); }  // free the server's preview reader for the still
      if (overlay) { overlay.hidden = false; }
    });
  });
})();
