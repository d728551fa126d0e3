/* the app bundle, spa.4cd1e2bb.entry.js */
console.log("spa");
