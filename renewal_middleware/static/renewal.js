/* renewal.js: placeholder until the script lands */
