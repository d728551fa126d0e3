/* Angular's application builder (esbuild) names its bundles so: main-6INY5NWB.js */
console.log("main");
