/* Forms, progressively enhanced: the error summary takes the focus so a screen reader reads it first, and
   an empty time-zone field is filled with the browser's own zone. Without JavaScript the forms still work. */
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  document.querySelectorAll("input[data-browser-zone]").forEach(function (input) {
    if (!input.value && zone) input.value = zone;
  });
})();
