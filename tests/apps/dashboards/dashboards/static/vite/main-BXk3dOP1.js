/* Vite entry, main-BXk3dOP1.js: its hash is not hex */
