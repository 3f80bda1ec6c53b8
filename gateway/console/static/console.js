// Progressive enhancement only: every page reads fine without it.
// A region marked data-refresh is reloaded from its fragment URL every 5 s, while the tab is visible and no
// confirmation or field in it is open (an operator's half-typed reason is never wiped).
document.addEventListener("DOMContentLoaded", () => {
  for (const region of document.querySelectorAll("[data-refresh]")) {
    const refresh = async () => {
      if (document.hidden || region.querySelector("details[open]")) return;
      if (region.contains(document.activeElement) && document.activeElement.matches("input, select, textarea")) return;
      try {
        const response = await fetch(region.dataset.refresh, {credentials: "same-origin"});
        const html = response.ok ? await response.text() : null;
        if (html !== null && !region.querySelector("details[open]")) region.innerHTML = html;
      } catch (_) { /* the next tick tries again */ }
    };
    setInterval(refresh, 5000);
  }
});

// The one form: a chosen matter disables the matters it excludes (城乡居民养老 greys out 灵活就业养老), flags a
// matter whose prerequisite is not chosen, and shows only the sections of chosen matters.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("[data-one-form]");
  if (!form) return;
  const boxes = new Map([...form.querySelectorAll("input[name=matters]")].map((box) => [box.value, box]));
  const apply = () => {
    const chosen = new Set([...boxes.values()].filter((box) => box.checked).map((box) => box.value));
    for (const fieldset of form.querySelectorAll("[data-matter]")) {
      const code = fieldset.dataset.matter;
      const excludedBy = (fieldset.dataset.excludes || "").split(" ").filter((x) => chosen.has(x));
      const box = boxes.get(code);
      box.disabled = excludedBy.length > 0;
      if (box.disabled) box.checked = false;
      fieldset.classList.toggle("excluded", box.disabled);
      fieldset.querySelector("[data-section]").hidden = !box.checked;
      const needs = (fieldset.dataset.needs || "").split(" ").filter(Boolean);
      const note = fieldset.querySelector("[data-role=needs-note]");
      if (note) note.classList.toggle("unmet", box.checked && !needs.some((x) => chosen.has(x)));
    }
  };
  form.addEventListener("change", apply);
  apply();
});
