import { describeMailTarget } from './support/mail-target.js';

describeMailTarget('postfix', { validate: ['/usr/sbin/postfix', 'check'], reload: ['/usr/sbin/postfix', 'reload'] });
