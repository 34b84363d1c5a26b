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

  // A form with data-live previews as it is edited: posted in the background (with its CSRF
  // token, like any form of the console) a moment after typing stops, and the page's
  // #preview replaced with the one in the answer.
  for (const form of document.querySelectorAll("form[data-live]")) {
    const target = document.getElementById("preview");
    if (!target) continue;
    let timer = null;
    let asked = 0;
    form.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const mine = ++asked;
        const body = new URLSearchParams(new FormData(form));
        try {
          const answer = await fetch(form.dataset.live, { method: "POST", body, credentials: "same-origin" });
          if (mine !== asked) return; // a newer preview is on its way
          const page = new DOMParser().parseFromString(await answer.text(), "text/html");
          const fresh = page.getElementById("preview");
          if (fresh) target.replaceChildren(...fresh.childNodes);
        } catch (_) {
          // The Preview button still works.
        }
      }, 600);
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
