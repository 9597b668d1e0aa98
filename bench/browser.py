"""Browser to daemon: Chromium (Debian's /usr/bin/chromium, Playwright's sync API) sending over HTTP
upload and over a WebRTC data channel, beside their baselines, in one run.

Usage: python bench/browser.py [--http-mib N] [--webrtc-mib M] [--runs R]
       (defaults: 1024 MiB over HTTP, 256 MiB over WebRTC, 3 runs)

- **HTTP upload, the page's own path**: the logged-in web UI's Send view gets the file
  (``#send-files``); the page hashes it (127.0.0.1 is a secure context) and streams it with one
  ``PUT /api/v1/inbox/<name>`` (docs/web_ui.md); the clock runs from handing the page the file to
  the queue showing it in the inbox, verified. Baseline: ``curl -T`` of the same file to the same
  daemon's ``PUT /api/v1/inbox/<name>``, and raw TCP between two Python processes (the limit).
- **WebRTC**: the web UI has no page path that sends to the daemon over WebRTC (sending to the
  appliance uses HTTP; WebRTC is page to page, and daemon to page for receiving), so this measures
  Chromium's ``RTCDataChannel`` (ordered, 64 KiB messages, ``bufferedAmount`` backpressure) into
  an aiortc peer in a Python process: **stock** aiortc on plain asyncio, and aiortc **as the daemon
  runs it** (uvloop, ``daemon.peer.sctp_tuning`` installed). Baselines in the same run: stock
  aiortc to stock aiortc (bench/stock_aiortc.py) and Chromium to Chromium (two peer connections
  in one page). The clock runs from the page's first ``send`` to the receiver's reply that it has
  every byte.

Chromium is started with ``--allow-loopback-in-peer-connection`` and without mDNS host-name
hiding, so both ends can use 127.0.0.1 candidates.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Daemon, MiB, machine_note, median, payload, rate, raw_tcp, rotate, workdir  # noqa: E402
from bench.stock_aiortc import measure as stock_aiortc  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
MESSAGE = 65536

_PAGE_SENDER = """async ([offerOnly, size, message]) => {
  const pc = new RTCPeerConnection({iceServers: []});
  const dc = pc.createDataChannel('bench', {ordered: true});
  dc.binaryType = 'arraybuffer';
  window.__bench = {pc, dc};
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === 'complete') r(); else pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') r(); }; });
  return pc.localDescription.sdp;
}"""

_PAGE_SEND = """async ([answer, size, message]) => {
  const {pc, dc} = window.__bench;
  await pc.setRemoteDescription({type: 'answer', sdp: answer});
  await new Promise((r, j) => { dc.onopen = r; setTimeout(() => j(new Error('channel did not open')), 30000); if (dc.readyState === 'open') r(); });
  const chunk = new Uint8Array(message);
  for (let i = 0; i < message; i++) chunk[i] = (i * 31) & 255;
  const done = new Promise(r => { dc.onmessage = () => r(); });
  dc.bufferedAmountLowThreshold = 1 << 20;
  const start = performance.now();
  let sent = 0;
  while (sent < size) {
    if (dc.bufferedAmount > 8 << 20) await new Promise(r => { dc.onbufferedamountlow = r; });
    dc.send(chunk);
    sent += message;
  }
  await done;
  const seconds = (performance.now() - start) / 1000;
  pc.close();
  return seconds;
}"""

_PAGE_LOCAL_PAIR = """async ([size, message]) => {
  const a = new RTCPeerConnection({iceServers: []}), b = new RTCPeerConnection({iceServers: []});
  a.onicecandidate = e => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = e => e.candidate && a.addIceCandidate(e.candidate);
  const dc = a.createDataChannel('bench', {ordered: true});
  let got = 0, start;
  const done = new Promise(r => { b.ondatachannel = e => { e.channel.binaryType = 'arraybuffer';
    e.channel.onmessage = m => { got += m.data.byteLength; if (got >= size) r(); }; }; });
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
  await new Promise(r => { dc.onopen = r; });
  const chunk = new Uint8Array(message);
  dc.bufferedAmountLowThreshold = 1 << 20;
  start = performance.now();
  let sent = 0;
  while (sent < size) {
    if (dc.bufferedAmount > 8 << 20) await new Promise(r => { dc.onbufferedamountlow = r; });
    dc.send(chunk); sent += message;
  }
  await done;
  const seconds = (performance.now() - start) / 1000;
  a.close(); b.close();
  return seconds;
}"""


def _aiortc_receiver(conn, size: int, tuned: bool) -> None:
    """An aiortc answerer that counts bytes and replies "done"; stock on asyncio, or as the daemon runs it."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    if tuned:
        from daemon.peer import sctp_tuning

        sctp_tuning.install(sctp_tuning.FEATURES)

    async def main() -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        finished = asyncio.Event()

        @pc.on("datachannel")
        def on_channel(channel) -> None:
            got = 0

            @channel.on("message")
            def on_message(message) -> None:
                nonlocal got
                got += len(message)
                if got >= size and not finished.is_set():
                    channel.send(b"done")
                    finished.set()

        offer = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        conn.send(pc.localDescription.sdp)
        await finished.wait()
        await asyncio.sleep(2)
        await pc.close()

    if tuned:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def chromium_to_aiortc(page, size: int, tuned: bool) -> float:
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_aiortc_receiver, args=(theirs, size, tuned))
    proc.start()
    try:
        page.goto("about:blank")
        offer = page.evaluate(_PAGE_SENDER, [True, size, MESSAGE])
        ours.send(offer)
        if not ours.poll(60):
            raise RuntimeError("the aiortc peer gave no answer")
        answer = ours.recv()
        return page.evaluate(_PAGE_SEND, [answer, size, MESSAGE])
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()


def chromium_to_chromium(page, size: int) -> float:
    page.goto("about:blank")
    return page.evaluate(_PAGE_LOCAL_PAIR, [size, MESSAGE])


def page_upload(page, daemon: Daemon, source: Path) -> float:
    from playwright.sync_api import expect

    from tests.webui.browser import login

    login(page, daemon, path="/#/send")
    start = time.perf_counter()
    page.locator("#send-files").set_input_files(source)
    item = page.locator("#upload-queue li", has_text=source.name).last
    expect(item.locator(".badge")).to_have_text("in the inbox", timeout=1_800_000)
    elapsed = time.perf_counter() - start
    return elapsed


def curl_upload(daemon: Daemon, source: Path, name: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-H", "Expect:", "-H",
                           f"Authorization: Bearer {daemon.token}", "-T", str(source),
                           f"{daemon.base}/api/v1/inbox/{name}"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"curl failed: {done.stderr}")
    return elapsed


def _clear_inbox(daemon: Daemon) -> None:
    for path in daemon.inbox.iterdir():
        if path.is_file():
            path.unlink()


def main() -> None:
    from playwright.sync_api import sync_playwright

    from tests.webui.browser import CHROMIUM_ARGS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http-mib", type=int, default=1024)
    parser.add_argument("--webrtc-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    http_size, rtc_size = args.http_mib * MiB, args.webrtc_mib * MiB
    rates: dict[str, list[float]] = {}
    print(f"start: {machine_note()}", flush=True)
    with workdir() as tmp, sync_playwright() as playwright:
        scratch = Path(tmp)
        source, _ = payload(scratch, http_size)
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, chromium_sandbox=False,
            args=CHROMIUM_ARGS + ["--allow-loopback-in-peer-connection",
                                  "--disable-features=WebRtcHideLocalIpsWithMdns"])
        daemon = Daemon(scratch / "appliance").start()
        try:
            subjects = {
                "page HTTP upload": lambda: http_size / 1e6 / page_upload(page, daemon, source),
                "curl -T upload": lambda: http_size / 1e6 / curl_upload(daemon, source, source.name),
                "raw TCP": lambda: rate(http_size, raw_tcp(source, http_size)),
                "Chromium -> aiortc as in the daemon": lambda: rate(rtc_size, chromium_to_aiortc(page, rtc_size, True)),
                "Chromium -> stock aiortc": lambda: rate(rtc_size, chromium_to_aiortc(page, rtc_size, False)),
                "stock aiortc -> stock aiortc": lambda: rate(rtc_size, stock_aiortc(rtc_size)["seconds"]),
                "Chromium -> Chromium (one page)": lambda: rate(rtc_size, chromium_to_chromium(page, rtc_size)),
            }
            for run in range(args.runs):
                for name in rotate(list(subjects), run):
                    context = browser.new_context()
                    page = context.new_page()
                    try:
                        value = subjects[name]()
                    finally:
                        context.close()
                        _clear_inbox(daemon)
                    rates.setdefault(name, []).append(value)
                    print(f"  run {run + 1}: {name} {value:.1f} MB/s", flush=True)
                print(f"run {run + 1} done [{machine_note()}]", flush=True)
        finally:
            daemon.stop()
            browser.close()
    print(f"\nHTTP: {args.http_mib} MiB; WebRTC: {args.webrtc_mib} MiB; medians of {args.runs} runs (MB/s):")
    for name, values in rates.items():
        print(f"  {name:36s} {median(values):8.1f}   runs: " + ", ".join(f"{v:.1f}" for v in values))

    def ratio(a: str, b: str) -> str:
        per_run = [x / y for x, y in zip(rates[a], rates[b], strict=True)]
        return f"{median(rates[a]) / median(rates[b]):.2f}x (per-run median {median(per_run):.2f}x)"

    print("ratios:")
    print(f"  page HTTP upload / curl -T          {ratio('page HTTP upload', 'curl -T upload')}")
    print(f"  page HTTP upload / raw TCP          {ratio('page HTTP upload', 'raw TCP')}")
    print(f"  Chromium->daemon's aiortc / Chromium->stock aiortc  {ratio('Chromium -> aiortc as in the daemon', 'Chromium -> stock aiortc')}")
    print(f"  Chromium->daemon's aiortc / stock aiortc pair       {ratio('Chromium -> aiortc as in the daemon', 'stock aiortc -> stock aiortc')}")
    print(f"  Chromium->daemon's aiortc / Chromium pair           {ratio('Chromium -> aiortc as in the daemon', 'Chromium -> Chromium (one page)')}")
    print(f"end: {machine_note()}")


if __name__ == "__main__":
    main()
