# Sourced by scripts/bench-formats.sh and scripts/bench-ab.sh: `bench_file FORMAT` sets `file`
# (the benchmark file of that format under $dir, for $lines lines) and `grep` (the ripgrep count
# it is compared with).
bench_file() {
    case $1 in
        nginx) file="$dir/access-$lines.log"; grep=(rg -c ' 502 ') ;;
        nginx_error) file="$dir/error-$lines.log"; grep=(rg -c 'connect\(\) failed') ;;
        haproxy) file="$dir/haproxy-$lines.log"; grep=(rg -c ' SC-- ') ;;
        alb) file="$dir/alb-$lines.log.gz"; grep=(rg -z -c ' 502 - ') ;;
        ingress) file="$dir/ingress-$lines.log"; grep=(rg -c ' 502 ') ;;
        *) echo "unknown format $1" >&2; exit 2 ;;
    esac
}

# How a file came into the page cache changes how fast it is read: pages the kernel was given
# by a write (a log as the proxy writes it) are held in larger pieces than pages read back from
# the disk, and on this project's machine ripgrep, which maps the file, counted a freshly
# written copy 1.7x as fast as the same bytes read back (57 against 98 ms; gatewatch, which
# reads, 1.2x). So a file is written anew just before it is timed: every run starts from the
# same state, the one a log being written is in.
fresh_in_cache() {
    cp "$1" "$1.tmp"
    mv "$1.tmp" "$1"
    # Written back before timing starts (the pages stay cached as they are): a write-back of
    # hundreds of MB during the runs slowed whichever command it fell on by up to 2x.
    sync "$1"
}
