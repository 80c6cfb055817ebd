// Starts Swagger UI on /docs (server/docs.py): a file, not an inline script, so a CSP allows it.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var el = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({ url: el.getAttribute("data-openapi"), dom_id: "#swagger-ui" });
});
