// Inline code without spaces (a parameter, a flag such as --closed, an identifier) never wraps:
// browsers would otherwise break it at a hyphen. Code with spaces still wraps at the spaces.
(function () {
  function keepWhole() {
    document.querySelectorAll(".md-typeset :not(pre) > code").forEach(function (code) {
      if (!/\s/.test(code.textContent.trim())) code.classList.add("procgen-whole");
    });
  }
  if (window.document$ && window.document$.subscribe) window.document$.subscribe(keepWhole);  // instant loading
  else if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", keepWhole);
  else keepWhole();
})();
