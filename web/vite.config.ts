import { defineConfig } from 'vite';
import vue from '@vitejs/plugin-vue';

// The kernel serves dist/ at `/`; the SPA fallback there makes deep links work.
export default defineConfig({
  plugins: [vue()],
  base: '/',
  // `npm run dev -w web`: hot reload against a kernel on CERTCTL_DEV_API (default https://localhost:8443).
  server: {
    proxy: {
      '/api': { target: process.env.CERTCTL_DEV_API ?? 'https://localhost:8443', secure: false, ws: true, changeOrigin: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        // Charts and forms are only needed on some pages; keep the first page light.
        manualChunks: { charts: ['chart.js', 'vue-chartjs'], forms: ['@jsonforms/core', '@jsonforms/vue', '@jsonforms/vue-vanilla'] },
      },
    },
  },
});
