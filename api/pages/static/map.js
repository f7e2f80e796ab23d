// The appeal's spot on the city's own tiles (APPEALFLOW_MAP_TILE_URL), with a pin and the circle of
// the position's accuracy. Only drawn when the city gave a tile server; Leaflet comes from our origin.
(function () {
  "use strict";
  var box = document.getElementById("position-pin-map");
  if (!box || !window.L) return;
  var spot = [Number(box.dataset.lat), Number(box.dataset.long)];
  var map = window.L.map(box, { scrollWheelZoom: false }).setView(spot, 17);
  window.L.tileLayer(box.dataset.tiles, { maxZoom: 19, attribution: box.dataset.attribution || "" }).addTo(map);
  window.L.marker(spot, { keyboard: false }).addTo(map);
  if (Number(box.dataset.accuracy) > 0) {
    window.L.circle(spot, { radius: Number(box.dataset.accuracy), weight: 1, fillOpacity: 0.1 }).addTo(map);
  }
})();
