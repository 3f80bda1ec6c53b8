// Progressive enhancement only: every page reads fine without it.
// A region marked data-refresh is reloaded from its fragment URL every 5 s, while the tab is visible.
document.addEventListener("DOMContentLoaded", () => {
  for (const region of document.querySelectorAll("[data-refresh]")) {
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const response = await fetch(region.dataset.refresh, {credentials: "same-origin"});
        if (response.ok) region.innerHTML = await response.text();
      } catch (_) { /* the next tick tries again */ }
    };
    setInterval(refresh, 5000);
  }
});
