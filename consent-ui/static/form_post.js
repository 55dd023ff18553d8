// Submits the OAuth form_post response form as soon as the page has loaded.
(function () {
  "use strict";
  function go() {
    var form = document.forms[0];
    if (form) {
      form.submit();
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", go);
  } else {
    go();
  }
})();
