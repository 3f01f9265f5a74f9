// Farebox dashboard: the only script. Pages work without it; with it, a
// click on a sortable table's header sorts by that column (numerically by
// each cell's data-sort, the exact value in micro-units, when it has one).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.sortable")) {
    const heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.from(heads).forEach((th, col) => {
      th.tabIndex = 0;
      const sort = () => {
        const asc = th.getAttribute("aria-sort") !== "ascending";
        for (const h of heads) h.removeAttribute("aria-sort");
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows).filter((r) => r.cells.length > col);
        const key = (r) => {
          const c = r.cells[col];
          return c.dataset.sort !== undefined ? c.dataset.sort : c.textContent.trim();
        };
        const integer = /^-?\d+$/;
        const cmp = (a, b) => {
          const x = key(a), y = key(b);
          let d;
          if (integer.test(x) && integer.test(y)) {
            const bx = BigInt(x), by = BigInt(y); // exact, past 2^53
            d = bx < by ? -1 : bx > by ? 1 : 0;
          } else if (x !== "" && y !== "" && !isNaN(Number(x)) && !isNaN(Number(y))) {
            d = Number(x) - Number(y);
          } else {
            d = x.localeCompare(y);
          }
          return asc ? d : -d;
        };
        rows.sort(cmp).forEach((r) => body.appendChild(r));
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
    });
  }
});
