/* Show every time in the visitor's own time zone (or the one chosen with ?tz=). The server rendered them
   in UTC and each <time> carries its instant, so without JavaScript the page is still right, in UTC. */
(function () {
  "use strict";
  var zone = document.body.dataset.tz || Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone) return;
  var day = new Intl.DateTimeFormat(undefined, { timeZone: zone, weekday: "short", day: "numeric", month: "short" });
  var clock = new Intl.DateTimeFormat(undefined, { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  var full = function (when) { return day.format(when) + ", " + clock.format(when); };

  document.querySelectorAll("[data-zone-name]").forEach(function (el) { el.textContent = zone; });
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var when = new Date(el.dateTime);
    el.textContent = el.dataset.local === "time" ? clock.format(when) : full(when);
  });

  // Regroup free times under the visitor's own dates: a morning in UTC can be the evening before here.
  var list = document.getElementById("slot-days");
  if (!list) return;
  var days = new Map();
  list.querySelectorAll("a.slot").forEach(function (link) {
    var when = new Date(link.dataset.start);
    link.setAttribute("aria-label", "Book " + full(when));
    if (!days.has(day.format(when))) days.set(day.format(when), []);
    days.get(day.format(when)).push(link.parentElement);
  });
  list.replaceChildren();
  days.forEach(function (items, label) {
    var section = document.createElement("section");
    var heading = document.createElement("h3");
    var ul = document.createElement("ul");
    section.className = "slot-day";
    ul.className = "slots";
    ul.setAttribute("role", "list");
    heading.textContent = label;
    items.forEach(function (item) { ul.appendChild(item); });
    section.append(heading, ul);
    list.appendChild(section);
  });
})();
