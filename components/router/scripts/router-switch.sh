# Make a slot the one nginx serves: the slot's name arrives on stdin and is
# written, atomically, to the file router.js reads per request. No reload, so
# no connection is touched. Returns once nginx answers with the new slot.
#   SLOT_FILE   the file router.js reads
#   STATUS_URL  the loopback status server the config defines
set -eu
read -r slot
case "$slot" in
blue|green) ;;
*) echo "router: '$slot' is not a slot" >&2; exit 1 ;;
esac
printf '%s\n' "$slot" > "$SLOT_FILE.next"
mv "$SLOT_FILE.next" "$SLOT_FILE"
attempts=100
until wget -q -O - "$STATUS_URL" 2>/dev/null | grep -q "slot=$slot$"; do
    attempts=$((attempts - 1))
    if [ "$attempts" -le 0 ]; then
        echo "router: nginx does not serve slot $slot after 10 s" >&2
        exit 1
    fi
    sleep 0.1
done
echo "router: slot $slot serves"
