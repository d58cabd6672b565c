import { describeMailTarget } from './support/mail-target.js';

describeMailTarget('dovecot', { validate: ['/usr/bin/doveconf', '-n'], reload: ['/usr/bin/doveadm', 'reload'] });
