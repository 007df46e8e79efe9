/* Starts Swagger UI on /api/docs. A static file rather than an inline script, so the page works under a
   Content-Security-Policy without 'unsafe-inline'; the settings come from a JSON data block. */
(function () {
  "use strict";
  var container = document.getElementById("swagger-ui-container");
  var config = { url: container.dataset.specUrl, domNode: container, deepLinking: true };
  Object.assign(config, JSON.parse(document.getElementById("swagger-ui-config").textContent || "{}"));
  window.ui = SwaggerUIBundle(config);
})();
