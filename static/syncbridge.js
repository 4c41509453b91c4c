// SyncBridge: a few lines of progressive enhancement. Every form also works without it.
(function () {
  "use strict";

  // Show or hide a block from a checkbox: data-hide-when-checked="#checkbox-id".
  function bindToggles() {
    document.querySelectorAll("[data-hide-when-checked]").forEach(function (block) {
      var box = document.querySelector(block.dataset.hideWhenChecked);
      if (!box) return;
      var sync = function () { block.hidden = box.checked; };
      box.addEventListener("change", sync);
      sync();
    });
  }

  // Field mappings: "+ Add a field", one pair at a time, same data type, no field twice.
  function bindMappings() {
    var rows = document.getElementById("mapping-rows");
    var add = document.getElementById("add-mapping");
    var template = document.getElementById("mapping-empty");
    if (!rows || !add || !template) return;
    var total = document.getElementById("id_" + add.dataset.prefix + "-TOTAL_FORMS");

    // The two field selects of a row (its conflict rule select takes no part in pairing).
    function selects(row) { return row.querySelectorAll("td:not(.conflict-rule) select"); }
    function live(row) { var d = row.querySelector("input[type=checkbox]"); return !(d && d.checked); }

    function refresh() {
      var list = Array.prototype.slice.call(rows.querySelectorAll("tr.mapping-row"));
      var used = [{}, {}];
      list.forEach(function (row) {
        if (!live(row)) return;
        selects(row).forEach(function (s, i) { if (s.value) used[i][s.value] = (used[i][s.value] || 0) + 1; });
      });
      list.forEach(function (row) {
        var pair = selects(row);
        var type = pair[0].selectedOptions[0] && pair[0].selectedOptions[0].dataset.type;
        pair.forEach(function (s, i) {
          Array.prototype.forEach.call(s.options, function (o) {
            if (!o.value) return;
            var taken = used[i][o.value] && o.value !== s.value;
            var wrongType = i === 1 && type && o.dataset.type && o.dataset.type !== type;
            o.disabled = Boolean(taken || wrongType);
          });
        });
      });
      var last = list.filter(live).pop();
      add.disabled = Boolean(last && !selects(last)[1].value);
      var hint = document.getElementById("add-mapping-hint");
      if (hint) hint.hidden = !add.disabled;
    }

    add.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      var html = template.innerHTML.replace(/__prefix__/g, String(index));
      var body = document.createElement("tbody");
      body.innerHTML = html.trim();
      rows.appendChild(body.firstElementChild);
      total.value = String(index + 1);
      refresh();
    });
    rows.addEventListener("change", function (event) {
      var row = event.target.closest("tr");
      if (row) row.classList.toggle("removed", !live(row));
      refresh();
    });
    refresh();
  }

  // Transfer dialog: the source app follows the direction (the sender by default).
  function bindTransfer() {
    var form = document.getElementById("transfer-form");
    if (!form) return;
    var senders = JSON.parse(form.dataset.senders || "{}");
    form.querySelectorAll("input[name=direction]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        var source = form.querySelector("input[name=source_app][value=" + senders[radio.value] + "]");
        if (source) source.checked = true;
      });
    });
  }

  // Constants: a single-option field offers its options instead of a free-text box.
  function bindConstantOptions() {
    document.querySelectorAll(".constant-value[data-options]").forEach(function (box) {
      var field = document.getElementById(box.dataset.field);
      var data = document.getElementById(box.dataset.options);
      var text = box.querySelector("input");
      var choice = box.querySelector("select.constant-choice");
      if (!field || !data || !text || !choice) return;
      var options = JSON.parse(data.textContent || "{}");
      field.addEventListener("change", function () {
        var labels = options[field.value] || [];
        choice.innerHTML = "";
        labels.forEach(function (label) { choice.add(new Option(label, label)); });
        var offer = labels.length > 0;
        choice.hidden = choice.disabled = !offer;
        text.hidden = text.disabled = offer;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    bindToggles();
    bindConstantOptions();
    bindMappings();
    bindTransfer();
  });
})();

// Second match key (issue 12): show the Pipedrive field choice only when a key is chosen,
// data-hide-unless-value="#select-id". Without JS the choice shows after saving.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-hide-unless-value]").forEach(function (block) {
      var select = document.querySelector(block.dataset.hideUnlessValue);
      if (!select) return;
      var sync = function () { block.hidden = !select.value; };
      select.addEventListener("change", sync);
      sync();
    });
  });
})();
