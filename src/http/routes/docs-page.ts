/**
 * The `/docs` page: Swagger UI from swagger-ui-dist (served under /docs/), nothing from a CDN. The document needs
 * the API key, so the page asks for it once and keeps it in session storage (the dashboard's key, same origin),
 * and sends it as X-API-Key with every request Swagger UI makes. The key never goes into a URL.
 */
export const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>aipd API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<style>#login{font:14px sans-serif;margin:2em}#login input{width:28em}</style>
</head>
<body>
<form id="login" hidden>
<label>API key <input id="key" type="password" autocomplete="off"></label>
<button type="submit">Open the docs</button>
</form>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

export const DOCS_INIT_JS = `'use strict';
(function () {
  var KEY = 'aipd.apiKey';
  function open(key) {
    window.SwaggerUIBundle({
      url: '/openapi.json',
      dom_id: '#swagger-ui',
      requestInterceptor: function (req) { req.headers['X-API-Key'] = key; return req; },
    });
  }
  var key = sessionStorage.getItem(KEY);
  if (key) return open(key);
  var form = document.getElementById('login');
  form.hidden = false;
  form.addEventListener('submit', function (e) {
    e.preventDefault();
    var k = document.getElementById('key').value.trim();
    if (!k) return;
    sessionStorage.setItem(KEY, k);
    form.hidden = true;
    open(k);
  });
})();
`;
