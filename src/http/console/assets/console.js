// Roster console: small progressive enhancements. Every page works without this script.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: shown only where the clipboard can be written.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    if (!navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Select and copy";
      }
    });
  }

  // Forms that change something irreversibly ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // Pages that follow something running (a sync, the log) reload themselves while visible.
  const refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    const seconds = Math.max(1, Number(refresh.dataset.refresh) || 5);
    setInterval(() => {
      if (document.visibilityState === "visible") window.location.reload();
    }, seconds * 1000);
  }
});
