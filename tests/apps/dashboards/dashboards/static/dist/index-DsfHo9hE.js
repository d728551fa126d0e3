/* Vite names its bundles so, with no manifest: index-DsfHo9hE.js */
console.log("index");
