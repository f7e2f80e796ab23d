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
  // "Use my location": the browser's position, asked for only when the citizen presses the button,
  // then open appeals of the same kind within about 200 m (GET /reference/nearby; codes, categories
  // and distances only). Without script, or refused, the form files as ever without a position.
  var locate = document.getElementById("use-location");
  if (locate && navigator.geolocation) {
    locate.hidden = false;
    var statusLine = document.getElementById("position-status");
    var nearby = document.getElementById("nearby");
    var showNearby = function () {
      var lat = document.getElementById("lat").value, lon = document.getElementById("long").value;
      var category = document.getElementById("category");
      if (!lat || !lon) return;
      var query = { lat: lat, long: lon };
      if (category && category.value) query.category = category.value;
      fetch("/reference/nearby?" + new URLSearchParams(query), { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { appeals: [] }; })
        .then(function (body) {
          var list = document.getElementById("nearby-list");
          list.textContent = "";
          (body.appeals || []).forEach(function (a) {
            var item = document.createElement("li");
            item.textContent = a.code + " · " + a.received_on + " · " +
              nearby.dataset.metres.replace("{n}", a.distance_m);
            list.appendChild(item);
          });
          nearby.hidden = !(body.appeals || []).length;
        })
        .catch(function () { nearby.hidden = true; });
    };
    locate.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(function (position) {
        document.getElementById("lat").value = position.coords.latitude.toFixed(6);
        document.getElementById("long").value = position.coords.longitude.toFixed(6);
        document.getElementById("accuracy_m").value = Math.round(position.coords.accuracy);
        statusLine.textContent = statusLine.dataset.got.replace("{n}", Math.round(position.coords.accuracy));
        showNearby();
      }, function () { statusLine.textContent = statusLine.dataset.failed; },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
    });
    var picked = document.getElementById("category");
    if (picked) picked.addEventListener("change", showNearby);
  }
  // While a citizen types, policy answers that may already answer them (GET /policy/search). Text
  // from the server is only ever set as textContent; nothing found, or any failure, shows nothing.
  var panel = document.getElementById("policy-suggest");
  if (panel && window.fetch && window.URLSearchParams) {
    var list = document.getElementById("policy-suggest-list");
    var status = document.getElementById("policy-suggest-status");
    var fields = ["title", "text"].map(function (id) { return document.getElementById(id); })
      .filter(function (field) { return field; });
    var MIN_CHARS = 4, MAX_CHARS = 300, WAIT_MS = 400;
    var timer = null, asked = "", latest = 0, controller = null, dismissed = false, quietUntil = 0;
    var element = function (tag, className, text) {
      var node = document.createElement(tag);
      if (className) node.className = className;
      if (text) node.textContent = text;
      return node;
    };
    var hide = function () {
      panel.hidden = true;
      list.replaceChildren();
      status.textContent = "";
    };
    var show = function (answers) {
      list.replaceChildren.apply(list, answers.map(function (found) {
        var item = element("li");
        var question = element("p", "policy-q");
        question.appendChild(element("strong", "", String(found.question)));
        item.appendChild(question);
        item.appendChild(element("p", "answer", String(found.answer)));
        item.appendChild(element("p", "muted small source", panel.dataset.sourceLabel + ": " + String(found.source)));
        return item;
      }));
      panel.hidden = false;
      status.textContent = panel.dataset.count.replace("{n}", String(answers.length));
    };
    var ask = function () {
      // Whole characters only: a cut surrogate pair would be refused as unstorable text.
      var words = Array.from(fields.map(function (f) { return f.value.trim(); }).join(" ").replace(/\s+/g, " ").trim());
      var query = words.slice(0, MAX_CHARS).join("");
      if (dismissed || query === asked) return;
      if (Date.now() < quietUntil) { window.clearTimeout(timer); timer = window.setTimeout(ask, quietUntil - Date.now()); return; }
      asked = query;
      if (controller) controller.abort();
      if (words.length < MIN_CHARS) { latest += 1; hide(); return; }
      controller = window.AbortController ? new AbortController() : null;
      var mine = ++latest;
      fetch("/policy/search?" + new URLSearchParams({ q: query, limit: "3" }), {
        headers: { Accept: "application/json" }, signal: controller ? controller.signal : undefined,
      }).then(function (response) {
        if (response.status === 429) {
          // Over the search's rate limit: keep what is shown and ask again once it allows.
          quietUntil = Date.now() + 1000 * (parseInt(response.headers.get("Retry-After"), 10) || 10);
          asked = "";
          window.clearTimeout(timer);
          timer = window.setTimeout(ask, quietUntil - Date.now());
          return undefined;
        }
        return response.ok ? response.json() : null;
      }).then(function (body) {
        if (mine !== latest || dismissed || body === undefined) return;
        if (body && body.found && Array.isArray(body.answers) && body.answers.length) show(body.answers);
        else hide();
      }).catch(function () {
        if (mine === latest) hide();
      });
    };
    fields.forEach(function (field) {
      field.addEventListener("input", function () {
        window.clearTimeout(timer);
        timer = window.setTimeout(ask, WAIT_MS);
      });
    });
    // "Still want to submit": the suggestions step aside for the rest of this form.
    document.getElementById("policy-suggest-continue").addEventListener("click", function () {
      dismissed = true;
      latest += 1;
      hide();
      var next = document.getElementById("name") || document.getElementById("file-submit");
      if (next) next.focus();
    });
  }
  // A canned reply goes into the reply box, where the handler edits it: inserted at the cursor, or
  // in place of an empty box. Its text came filled in from the server and is set as a value only.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.insert-canned") : null;
    if (!button) return;
    var picker = document.getElementById(button.dataset.from);
    var box = picker && document.getElementById(picker.dataset.inserts);
    var chosen = picker && picker.options[picker.selectedIndex];
    if (!box || !chosen) return;
    var text = chosen.dataset.text || "";
    var at = typeof box.selectionStart === "number" && box.value ? box.selectionStart : box.value.length;
    box.value = box.value.slice(0, at) + text + box.value.slice(at);
    box.focus();
  });
})();

// The department pickers: typing in the box above a list keeps the departments whose names (Chinese
// or English) or code hold what was typed; a single choice moves to the first one left.
document.querySelectorAll("input.department-filter").forEach(function (box) {
  var list = document.getElementById(box.dataset.filters);
  if (!list) return;
  box.addEventListener("input", function () {
    var wanted = box.value.trim().toLowerCase();
    var first = null;
    Array.prototype.forEach.call(list.querySelectorAll("option[data-names]"), function (option) {
      var keep = !wanted || option.dataset.names.toLowerCase().indexOf(wanted) !== -1;
      option.hidden = !keep;
      if (keep && first === null) first = option;
    });
    if (!list.multiple && first !== null && (list.selectedIndex < 0 || list.options[list.selectedIndex].hidden
        || !list.value)) {
      first.selected = true;
    }
  });
});

// The appeal page's print button: the browser's print, which print.css turns into the work order.
document.querySelectorAll(".print-button").forEach(function (button) {
  button.addEventListener("click", function () { window.print(); });
});

// Long texts: a live count under the field instead of maxlength's silent cut. Past the limit the
// count turns into the error, beside the field, and the form is held until it is shortened.
document.querySelectorAll("textarea[data-max]").forEach(function (box) {
  var max = parseInt(box.dataset.max, 10);
  var count = document.getElementById(box.dataset.count);
  if (!count || !max) return;
  box.removeAttribute("maxlength");
  var over = function () { return box.value.length > max; };
  var show = function () {
    count.hidden = false;
    count.textContent = over() ? box.dataset.over + " (" + box.value.length + " / " + max + ")"
                               : count.dataset.words.replace("{n}", box.value.length).replace("{max}", max);
    count.className = over() ? "field-error" : "small muted";
    if (over()) {
      box.setAttribute("aria-invalid", "true");
      box.setAttribute("aria-describedby", count.id);
    } else if (box.getAttribute("aria-describedby") === count.id) {
      box.removeAttribute("aria-invalid");
      box.removeAttribute("aria-describedby");
    }
  };
  box.addEventListener("input", show);
  if (box.value) show();
  if (box.form) {
    box.form.addEventListener("submit", function (event) {
      if (!over()) return;
      event.preventDefault();
      event.stopImmediatePropagation();
      show();
      box.focus();
    }, true);
  }
});

// Filing anonymously: the contact fields step aside (the server ignores them then anyway).
(function () {
  var box = document.getElementById("anonymous");
  if (!box) return;
  var fields = ["phone", "email"].map(function (id) { return document.getElementById(id); }).filter(Boolean);
  var sync = function () { fields.forEach(function (f) { f.disabled = box.checked; }); };
  box.addEventListener("change", sync);
  sync();
})();

// Photos at filing. Chosen files (camera or gallery, several times over) gather in a list where each
// can be removed before sending; photos the browser can decode are shrunk here (the server
// re-encodes every photo anyway), and the form goes as one request whose bytes, in order, give
// each file's progress. What comes back is followed like a plain submit: the next page, or the form
// with its errors. Without script, the file input posts the files with the form.
(function () {
  "use strict";
  var input = document.getElementById("files");
  var list = document.getElementById("file-picks");
  var statusLine = document.getElementById("file-picks-status");
  if (!input || !list || !window.FormData || !window.XMLHttpRequest || !window.DataTransfer) return;
  var form = input.form;
  var picks = [];
  var max = Number(list.dataset.max || 6);
  var LONGEST = 2048;

  var kb = function (bytes) { return Math.max(1, Math.round(bytes / 1024)); };
  var render = function () {
    list.replaceChildren.apply(list, picks.map(function (pick, index) {
      var item = document.createElement("li");
      item.className = "file-pick";
      if (pick.file.type.indexOf("image/") === 0 && pick.file.type !== "image/heic") {
        var preview = document.createElement("img");
        preview.alt = "";
        preview.width = 64;
        preview.src = pick.preview || (pick.preview = URL.createObjectURL(pick.file));
        item.append(preview);
      }
      var name = document.createElement("span");
      name.className = "file-pick-name";
      name.textContent = pick.file.name + " · " + kb(pick.file.size) + " KB";
      pick.bar = document.createElement("progress");
      pick.bar.max = 1;
      pick.bar.value = 0;
      pick.bar.setAttribute("aria-label", pick.file.name);
      pick.note = document.createElement("span");
      pick.note.className = "small muted";
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "file-pick-remove";
      remove.textContent = list.dataset.remove;
      remove.addEventListener("click", function () {
        if (pick.preview) URL.revokeObjectURL(pick.preview);
        picks.splice(index, 1);
        render();
      });
      item.append(name, pick.bar, pick.note, remove);
      return item;
    }));
    list.hidden = !picks.length;
  };

  input.addEventListener("change", function () {
    var over = false;
    Array.prototype.forEach.call(input.files, function (file) {
      if (picks.length < max) picks.push({ file: file }); else over = true;
    });
    statusLine.textContent = over ? list.dataset.tooMany : "";
    input.value = "";  // the chosen files live in the list; the camera can be opened again for more
    render();
  });

  // A smaller JPEG of a photo the browser can draw, upright; the file itself when that is no smaller.
  var shrink = function (file) {
    if (!/^image\/(jpeg|png|webp)$/.test(file.type) || !window.createImageBitmap) return Promise.resolve(file);
    return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bitmap) {
      var scale = Math.min(1, LONGEST / Math.max(bitmap.width, bitmap.height));
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      return new Promise(function (resolve) {
        canvas.toBlob(function (blob) {
          if (!blob || blob.size >= file.size) { resolve(file); return; }
          resolve(new File([blob], file.name.replace(/\.[^.]*$/, "") + ".jpg", { type: "image/jpeg" }));
        }, "image/jpeg", 0.85);
      });
    }).catch(function () { return file; });
  };

  var button = form.querySelector("button[type=submit]");
  var label = button ? button.textContent : "";
  var ready = function () {  // the form can be sent again (after a failed upload)
    if (!button) return;
    delete button.dataset.sent;
    button.disabled = false;
    button.textContent = label;
  };

  form.addEventListener("submit", function (event) {
    if (!picks.length || event.defaultPrevented) return;
    event.preventDefault();
    Promise.all(picks.map(function (pick) { return shrink(pick.file); })).then(function (files) {
      var data = new FormData(form);
      data.delete("files");
      // Where each file starts in the body: the fields first, then the files in order (the parts'
      // own headers are a few hundred bytes each, small beside a photo).
      var offset = 0;
      data.forEach(function (value, name) { offset += new Blob([name, value]).size + 100; });
      files.forEach(function (file, index) {
        var pick = picks[index];
        if (file !== pick.file) pick.note.textContent = list.dataset.shrunk.replace("{kb}", kb(file.size));
        pick.start = offset;
        pick.size = file.size;
        offset += file.size + 200;
        data.append("files", file, file.name);
      });
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.upload.addEventListener("progress", function (progress) {
        picks.forEach(function (pick) {
          var part = (progress.loaded - pick.start) / Math.max(pick.size, 1);
          pick.bar.value = Math.min(1, Math.max(0, part));
        });
      });
      request.upload.addEventListener("load", function () {
        picks.forEach(function (pick) { pick.bar.value = 1; pick.note.textContent = list.dataset.sent; });
      });
      request.addEventListener("load", function () {
        if (request.status < 400 && request.responseURL && request.responseURL !== form.action) {
          window.location.assign(request.responseURL);
          return;
        }
        document.open();
        document.write(request.responseText);
        document.close();
      });
      request.addEventListener("error", function () { statusLine.textContent = list.dataset.failed; ready(); });
      request.send(data);
    });
  });
})();

// The dispatcher's list: the bulk form shows the fields its chosen action needs and counts the ticks;
// "tick all" ticks the page. Without script every field shows and the form works as ever.
(function () {
  "use strict";
  var form = document.getElementById("bulk-form");
  if (!form) return;
  var picks = function () { return Array.prototype.slice.call(document.querySelectorAll("input[name=appeals][form=bulk-form]")); };
  var count = document.getElementById("bulk-count");
  var show = function () {
    var action = (form.querySelector("input[name=action]:checked") || {}).value;
    form.querySelectorAll("[data-for]").forEach(function (field) { field.hidden = field.dataset.for !== action; });
    var ticked = picks().filter(function (box) { return box.checked; }).length;
    count.textContent = ticked ? count.dataset.words.replace("{n}", ticked) : "";
  };
  form.addEventListener("change", show);
  document.addEventListener("change", function (event) {
    if (event.target.name === "appeals") show();
  });
  var all = document.getElementById("bulk-all");
  if (all) all.addEventListener("change", function () {
    picks().forEach(function (box) { box.checked = all.checked; });
    show();
  });
  show();
})();

// Keys for the common path. In the list: j / k move between appeals, x ticks one, Enter opens it
// (the link has the focus), / goes to the search box. On an appeal: / goes to the department
// filter, Alt+Enter sends the dispatch, Esc goes back to the list. Never while typing in a field.
(function () {
  "use strict";
  var typing = function (target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  };
  var rows = function () { return Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr")); };
  var current = function () {
    var active = document.activeElement;
    return rows().findIndex(function (row) { return row.contains(active); });
  };
  var focusRow = function (index) {
    var list = rows();
    if (!list.length) return;
    var row = list[Math.max(0, Math.min(list.length - 1, index))];
    var link = row.querySelector("a");
    if (link) link.focus();
    row.scrollIntoView({ block: "nearest" });
  };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey) return;
    if (event.key === "Enter" && event.altKey) {
      var dispatch = document.querySelector("#action-dispatch form");
      if (dispatch) { event.preventDefault(); dispatch.requestSubmit(); }
      return;
    }
    if (event.altKey || typing(event.target)) return;
    var queue = document.getElementById("queue");
    if (event.key === "/") {
      var box = document.getElementById("dispatch-department-filter") || document.getElementById("f-q");
      if (box) { event.preventDefault(); if (box.closest("details")) box.closest("details").open = true; box.focus(); }
    } else if (queue && (event.key === "j" || event.key === "k")) {
      event.preventDefault();
      var at = current();
      focusRow(at < 0 ? 0 : at + (event.key === "j" ? 1 : -1));
    } else if (queue && event.key === "x") {
      var row = rows()[current()];
      var tick = row && row.querySelector("input[name=appeals]");
      if (tick) { event.preventDefault(); tick.click(); }
    } else if (event.key === "Escape" && document.getElementById("appeal-status")) {
      window.location.assign("/work");
    }
  });
})();
