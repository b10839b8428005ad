// Import area: scan barcodes with the camera (BarcodeDetector + getUserMedia) into the codes box. Without the API
// the button stays hidden and codes are typed, pasted or sent by a USB scanner (which types a code and Enter: the
// box is a textarea, so Enter is a new line, never a submit).
(function () {
  "use strict";

  var FORMATS = ["ean_13", "ean_8", "upc_a", "upc_e", "code_128", "code_39", "itf", "qr_code"];
  var supported = "BarcodeDetector" in window && navigator.mediaDevices && navigator.mediaDevices.getUserMedia;
  var active = null;

  function setup(root) {
    var form = root.querySelector ? root.querySelector("[data-barcode-form]") : null;
    if (!form || form.dataset.scanReady) return;
    form.dataset.scanReady = "1";
    var start = form.querySelector("[data-scan-start]");
    if (!start || !supported) return;
    // Some browsers have the API but no barcode format (desktop Linux): the button would only fail there.
    var formats = window.BarcodeDetector.getSupportedFormats ? window.BarcodeDetector.getSupportedFormats()
                                                             : Promise.resolve(FORMATS);
    formats.then(function (list) { if (list && list.length) start.hidden = false; }, function () {});
  }

  function stop() {
    if (!active) return;
    active.running = false;
    active.stream.getTracks().forEach(function (track) { track.stop(); });
    active.box.hidden = true;
    active.start.hidden = false;
    active.textarea.focus();
    active = null;
  }

  function append(textarea, code) {
    var text = textarea.value;
    if (text && !/\n$/.test(text)) text += "\n";
    textarea.value = text + code + "\n";
    textarea.scrollTop = textarea.scrollHeight;
  }

  function scan(form) {
    var box = form.querySelector("[data-scanner]");
    var video = form.querySelector("[data-scan-video]");
    var status = form.querySelector("[data-scan-status]");
    var textarea = form.querySelector("textarea");
    var start = form.querySelector("[data-scan-start]");
    stop();
    Promise.resolve(window.BarcodeDetector.getSupportedFormats ? window.BarcodeDetector.getSupportedFormats() : FORMATS)
      .then(function (formats) {
        var wanted = FORMATS.filter(function (f) { return formats.indexOf(f) >= 0; });
        var detector = new window.BarcodeDetector(wanted.length ? { formats: wanted } : undefined);
        return navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
          .then(function (stream) { return { detector: detector, stream: stream }; });
      })
      .then(function (got) {
        active = { stream: got.stream, box: box, start: start, textarea: textarea, running: true, last: "", lastAt: 0 };
        var session = active;
        video.srcObject = got.stream;
        video.hidden = false;
        box.hidden = false;
        start.hidden = true;
        status.textContent = "Point the camera at a barcode.";
        return video.play().then(function () {
          function tick() {
            if (!session.running) return;
            got.detector.detect(video).then(function (codes) {
              codes.forEach(function (c) {
                var now = Date.now();
                // The same code seen again within 3 s is the same scan, not a second copy.
                if (c.rawValue && (c.rawValue !== session.last || now - session.lastAt > 3000)) {
                  append(textarea, c.rawValue);
                  status.textContent = "Added " + c.rawValue + ".";
                }
                if (c.rawValue) { session.last = c.rawValue; session.lastAt = now; }
              });
            }).catch(function () { /* a frame that could not be read */ })
              .then(function () { if (session.running) setTimeout(tick, 250); });
          }
          tick();
        });
      })
      .catch(function (err) {
        stop();
        status.textContent = "The camera could not be used (" + (err && err.name || "error") + "). Type or paste the codes instead.";
        box.hidden = false;
        video.hidden = true;
      });
  }

  document.addEventListener("click", function (evt) {
    var startBtn = evt.target.closest("[data-scan-start]");
    if (startBtn) { scan(startBtn.closest("[data-barcode-form]")); return; }
    if (evt.target.closest("[data-scan-stop]")) stop();
  });
  // Switching tabs or leaving the page turns the camera off.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (active && evt.detail.target && evt.detail.target.contains(active.textarea)) stop();
  });
  window.addEventListener("pagehide", stop);
  document.addEventListener("htmx:afterSwap", function (evt) { setup(evt.detail.target || document); });
  setup(document);
})();
