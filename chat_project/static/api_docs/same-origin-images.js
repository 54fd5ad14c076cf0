// Redoc draws its maker's logo at the foot of its menu from cdn.redoc.ly, and
// has no option to leave it out; the API docs load everything from this
// server. So on these pages an image from another origin is given no address:
// it fails at once, without a request, and Redoc leaves out a logo that fails.
"use strict";
(() => {
  const elsewhere = (value) => {
    const url = new URL(String(value), document.baseURI);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin !== location.origin;
  };
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    const refused = this instanceof HTMLImageElement && String(name).toLowerCase() === "src" && elsewhere(value);
    return setAttribute.call(this, name, refused ? "" : value);
  };
  const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    ...src,
    set(value) {
      src.set.call(this, elsewhere(value) ? "" : value);
    },
  });
})();
