import { createApp } from 'vue';
import App from './App.vue';
import { restoreSession } from './auth/session';
import { startLive } from './live/live';
import { makeRouter } from './router';
import './style.css';

async function boot(): Promise<void> {
  const signedIn = await restoreSession();
  if (signedIn) startLive();
  const app = createApp(App);
  app.use(makeRouter());
  app.mount('#app');
}

void boot();
