// Which slot serves, read per request from the file the switch step writes
// (components/router/scripts/router-switch.sh). A missing or unreadable file, or
// anything but a slot name in it, serves nothing (nginx answers 503) rather
// than guess a slot.
const fs = require('fs');

const SLOTS = ['blue', 'green'];

function slot(r) {
    try {
        const name = fs.readFileSync(r.variables.slot_file, 'utf8').trim();
        return SLOTS.includes(name) ? name : '';
    } catch (e) {
        return '';
    }
}

export default { slot };
