import { defineConfig } from "vitest/config";

// The Tauri window loads dist/ (built into the binary) or, in development, this dev server.
export default defineConfig({
  clearScreen: false,
  // The chimes come from the repository's assets/, beside ui/.
  server: { port: 5173, strictPort: true, fs: { allow: [".."] } },
  // Two pages: the app, and the guest page a browser opens to join a room (served by
  // `plenum serve` at /r/ROOM).
  build: {
    target: "safari15",
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    rollupOptions: { input: { index: "index.html", guest: "guest.html" } },
  },
  test: { environment: "jsdom", globals: true },
});
