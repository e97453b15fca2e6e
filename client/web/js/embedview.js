// The board inside a host page's iframe (embed=1): it tells the host its height (so the
// iframe grows with it, `backchannel:height`), and knows whether the reader is at the top of the
// list (the frame does not scroll itself, so IntersectionObservers watch the list instead).

import { h } from "./dom.js";

/** createEmbedView({list, tokens}) -> {start(), atTop()}. */
export function createEmbedView({ list, tokens }) {
  return {
    sentinelVisible: true,
    visible: new Set(),
    observer: null,
    start() {
      const sentinel = h("div", { class: "list-sentinel", "aria-hidden": "true" });
      list.before(sentinel);
      this.observer = new IntersectionObserver((entries) => {
        for (const entry of entries) {
          if (entry.target === sentinel) this.sentinelVisible = entry.isIntersecting;
          else if (entry.isIntersecting) this.visible.add(entry.target);
          else this.visible.delete(entry.target);
        }
      });
      this.observer.observe(sentinel);
      new MutationObserver(() => {
        for (const el of list.children) this.observer.observe(el);
        for (const el of [...this.visible]) if (!el.isConnected) this.visible.delete(el);
      }).observe(list, { childList: true });
      let last = 0;
      const report = () => {
        const height = Math.ceil(document.body.getBoundingClientRect().height);
        if (height !== last) {
          last = height;
          tokens.postToParent({ type: "backchannel:height", height });
        }
      };
      new ResizeObserver(report).observe(document.body);
      report();
    },
    atTop() {
      return this.sentinelVisible || this.visible.size === 0;
    },
  };
}
