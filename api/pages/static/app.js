// Small enhancements; every page works without them.
(function () {
  "use strict";
  // A submit button says it is busy and cannot be pressed twice (the server's idempotency key
  // makes a second press harmless anyway).
  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("button[type=submit][data-busy]");
    if (!button) return;
    if (button.dataset.sent) { event.preventDefault(); return; }
    button.dataset.sent = "1";
    window.setTimeout(function () { button.textContent = button.dataset.busy; button.disabled = true; }, 0);
  });
  // The street picker offers the chosen district's streets only.
  var district = document.getElementById("district");
  var street = document.getElementById("street");
  if (district && street) {
    var filter = function () {
      Array.prototype.forEach.call(street.options, function (option) {
        var other = option.dataset.district && district.value && option.dataset.district !== district.value;
        option.hidden = !!other;
        option.disabled = !!other;
        if (other && option.selected) street.value = "";
      });
    };
    district.addEventListener("change", filter);
    filter();
  }
})();
