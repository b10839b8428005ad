// Library enhancements on top of htmx. Every page works without this file.
(function () {
  "use strict";

  function browseForm(elt) {
    return elt && elt.closest ? elt.closest(".browse-form") : null;
  }

  // Clean URLs: leave empty fields and defaults out of the search/filter requests (and so of the pushed URL).
  document.addEventListener("htmx:configRequest", function (evt) {
    var form = browseForm(evt.detail.elt);
    if (!form || evt.detail.verb !== "get") return;
    var params = evt.detail.parameters;
    var dirs = JSON.parse(form.dataset.sortDirs || "{}");
    var defaults = JSON.parse(form.dataset.defaults || "{}");
    Object.keys(params).forEach(function (key) {
      var value = params[key];
      if (value === "" || defaults[key] === value) delete params[key];
    });
    var sort = params.sort || defaults.sort;
    if (params.dir && dirs[sort] === params.dir) delete params.dir;
  });

  // A new sort starts in its natural order (titles A→Z, years newest first); the order can then be flipped.
  document.addEventListener("change", function (evt) {
    var target = evt.target;
    if (!target || target.name !== "sort" || !browseForm(target)) return;
    var form = browseForm(target);
    var dirs = JSON.parse(form.dataset.sortDirs || "{}");
    var dir = form.querySelector('select[name="dir"]');
    if (dir && dirs[target.value]) dir.value = dirs[target.value];
  }, true);
})();
