import { ArcElement, BarElement, CategoryScale, Chart, Filler, Legend, LineElement, LinearScale, PointElement, Tooltip } from 'chart.js';

// Registered once, explicitly: only the pieces the dashboard draws end up in the bundle.
Chart.register(ArcElement, BarElement, LineElement, PointElement, CategoryScale, LinearScale, Tooltip, Legend, Filler);
Chart.defaults.animation = false;

export const STATUS_COLORS: Record<string, string> = {
  Active: '#2e9e5b', Expiring: '#e0a800', Expired: '#b33', RenewalInProgress: '#3a7bd5', Pending: '#999',
  Failed: '#d9534f', Revoked: '#6b4c9a', Archived: '#c8c8c8',
  Completed: '#2e9e5b', Running: '#3a7bd5', AwaitingCSR: '#8aa', AwaitingApproval: '#e0a800', Cancelled: '#c8c8c8',
};
