#!/usr/bin/python3
"""Loads a page in a real headless Chromium over the DevTools protocol and reports what a
user (and the console) would see. Run with /usr/bin/python3 (Debian's python3-websocket).

    browse.py CHROMIUM URL --screenshot FILE [--width 412 --height 915]

Prints one JSON object: {"console": [...], "exceptions": [...], "log": [...], "dom": "..."}
where console holds console messages of level warning or error, exceptions uncaught script
errors, and log the browser's own entries (failed resource loads and the like).
"""
import argparse, base64, json, os, shutil, subprocess, sys, tempfile, time
import websocket


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("chromium")
    ap.add_argument("url")
    ap.add_argument("--screenshot")
    ap.add_argument("--width", type=int, default=412)
    ap.add_argument("--height", type=int, default=915)
    a = ap.parse_args()
    profile = tempfile.mkdtemp(prefix="browse-")
    proc = subprocess.Popen(
        [a.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if time.time() > deadline or proc.poll() is not None:
                sys.exit("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port, path = open(port_file).read().split("\n")[:2]
        # No Origin header: Chromium refuses DevTools connections from web origins.
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=30,
                                         suppress_origin=True)
        ids = iter(range(1, 1 << 30))
        events = []

        def call(method, session=None, **params):
            i = next(ids)
            msg = {"id": i, "method": method, "params": params}
            if session:
                msg["sessionId"] = session
            ws.send(json.dumps(msg))
            while True:
                m = json.loads(ws.recv())
                if m.get("id") == i:
                    if "error" in m:
                        sys.exit(f"{method}: {m['error']}")
                    return m.get("result", {})
                events.append(m)

        target = call("Target.createTarget", url="about:blank")["targetId"]
        s = call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            call(f"{domain}.enable", s)
        call("Emulation.setDeviceMetricsOverride", s, width=a.width, height=a.height,
             deviceScaleFactor=1, mobile=True)
        call("Page.navigate", s, url=a.url)
        deadline = time.time() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            if time.time() > deadline:
                sys.exit("the page did not load within 30 s")
            events.append(json.loads(ws.recv()))
        time.sleep(0.3)  # late console messages
        ws.settimeout(0.2)
        try:
            while True:
                events.append(json.loads(ws.recv()))
        except websocket.WebSocketTimeoutException:
            pass
        ws.settimeout(30)
        dom = call("Runtime.evaluate", s, expression="document.documentElement.outerHTML",
                   returnByValue=True)["result"]["value"]
        if a.screenshot:
            shot = call("Page.captureScreenshot", s, format="png")["data"]
            with open(a.screenshot, "wb") as f:
                f.write(base64.b64decode(shot))
        out = {"console": [], "exceptions": [], "log": [], "dom": dom}
        for e in events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out["console"].append(" ".join(str(x.get("value", x.get("description", ""))) for x in p.get("args", [])))
            elif e.get("method") == "Runtime.exceptionThrown":
                out["exceptions"].append(p.get("exceptionDetails", {}).get("text", ""))
            elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                out["log"].append(p["entry"].get("text", ""))
        print(json.dumps(out))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
