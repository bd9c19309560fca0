// ferkit page: browser camera, photo and video uploads. Plain JavaScript, no libraries.
"use strict";

const CONFIG = JSON.parse(document.getElementById("ferkit-config").textContent);
const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- shared rendering -------------------------------------------------------------------------
function percent(value) {
  return `${Math.round(100 * value)}%`;
}

function faceLabel(face) {
  const id = face.face_id === undefined ? "" : `#${face.face_id} `;
  return `${id}${face.emotion} ${percent(face.scores[face.emotion])}`;
}

function largestFace(faces) {
  return faces.reduce((best, face) => (face.box[2] * face.box[3] > best.box[2] * best.box[3] ? face : best));
}

function setStatus(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// this tab's choice of prior, sent with each photo, video and camera frame (the server's setting by default)
function priorParam() {
  return `uniform_prior=${$("uniform-prior").checked ? 1 : 0}`;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// Boxes as positioned elements in percent of the frame, so they follow the video's displayed size.
function drawBoxes(overlay, faces, width, height) {
  overlay.replaceChildren(...faces.map((face) => {
    const [x, y, w, h] = face.box;
    const colour = CONFIG.colours[face.emotion];
    const box = document.createElement("div");
    box.className = "face-box";
    Object.assign(box.style, {
      left: `${(100 * x) / width}%`, top: `${(100 * y) / height}%`,
      width: `${(100 * w) / width}%`, height: `${(100 * h) / height}%`, borderColor: colour,
    });
    const label = document.createElement("span");
    label.className = "face-label";
    label.dataset.emotion = face.emotion;
    label.style.background = colour;
    label.textContent = faceLabel(face);
    box.append(label);
    return box;
  }));
}

function retryAfterMs(response, fallbackMs) {
  const seconds = parseFloat(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) ? Math.min(1000 * seconds, 30000) : fallbackMs;
}

// ---- live video from the server: its state under the picture, and reconnecting with back-off ----
// `full`: /video_feed turned this page away for its viewer cap; said under the picture until the stream plays.
const live = { retryMs: 1000, full: false };

async function pollLiveStatus() {
  const status = $("live-status");
  try {
    const response = await fetch("/api/stream");
    if (!response.ok) throw new Error(await errorMessage(response));
    const state = await response.json();
    if (state.error) setStatus(status, `The video source is unavailable: ${state.error}`, true);
    else if (live.full) setStatus(status, `The live stream is full (${state.viewers} viewers); retrying…`, true);
    else if (state.running) setStatus(status, `Live · ${state.fps.toFixed(1)} fps · ${state.viewers} watching`);
    else setStatus(status, "Starting…");
  } catch (error) {
    setStatus(status, `The server did not answer (${error.message}).`, true);
  }
}

async function reconnectLiveFeed() {
  const feed = $("live-feed");
  // An <img> cannot read why it failed: ask again with HEAD, which holds no viewer's place beyond its answer.
  // A 503 there is the viewer cap (or a server shutting down).
  const probe = await fetch("/video_feed", { method: "HEAD" }).catch(() => null);
  live.full = probe !== null && probe.status === 503;
  if (live.full) await pollLiveStatus();
  else setStatus($("live-status"), `The live stream stopped; reconnecting in ${live.retryMs / 1000} s…`, true);
  setTimeout(() => { feed.src = `/video_feed?reconnect=${Date.now()}`; }, live.retryMs);
  live.retryMs = Math.min(2 * live.retryMs, 16000);
}

function startLiveFeed() {
  const feed = $("live-feed");
  if (!feed) return;
  feed.addEventListener("error", reconnectLiveFeed);
  feed.addEventListener("load", () => {
    live.retryMs = 1000;
    if (live.full) {
      live.full = false;
      pollLiveStatus();
    }
  });
  if (feed.complete && !feed.naturalWidth) reconnectLiveFeed();  // it failed before this script ran
  else pollLiveStatus();
  setInterval(pollLiveStatus, 2000);
}

// ---- live bar chart of the main face's scores ----------------------------------------------------
const chartBars = {};

function buildChart() {
  const chart = $("score-chart");
  for (const name of CONFIG.class_names) {
    const row = document.createElement("div");
    row.className = "chart-row";
    row.innerHTML = `<span class="chart-name"></span><span class="chart-track"><span class="chart-fill"></span></span>
      <span class="chart-value">0%</span>`;
    row.querySelector(".chart-name").textContent = name;
    row.querySelector(".chart-fill").style.background = CONFIG.colours[name];
    chart.append(row);
    chartBars[name] = { fill: row.querySelector(".chart-fill"), value: row.querySelector(".chart-value") };
  }
}

function showScores(face) {
  for (const name of CONFIG.class_names) {
    const score = face ? face.scores[name] : 0;
    chartBars[name].fill.style.width = percent(score);
    chartBars[name].value.textContent = percent(score);
  }
}

// ---- browser camera -------------------------------------------------------------------------------
const camera = {
  stream: null, running: false, session: null, finished: [], rows: [], frames: 0, t0: null, fullAt: null,
};
// The camera run's results, one row per face per answered frame (one empty row for a frame without faces), as
// `ferkit video` writes its CSV. Kept in this page only: the server stores nothing. At most CSV_MAX_ROWS rows.
const CSV_MAX_ROWS = 200000;

function newSessionId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replaceAll("-", "");
  return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
}

function cameraErrorText(error) {
  if (!error) return "This browser offers no camera here (camera access needs https or localhost).";
  if (error.name === "NotAllowedError" || error.name === "SecurityError") {
    return "Camera access was denied. Allow it in the browser's site settings and press Start camera again; "
      + "photo and video uploads below work without it.";
  }
  if (error.name === "NotFoundError" || error.name === "OverconstrainedError") {
    return "No camera was found. Connect one and press Start camera again, or upload a photo or video below.";
  }
  if (error.name === "NotReadableError") return "The camera is busy in another program.";
  return `The camera could not start (${error.name}: ${error.message}).`;
}

async function startCamera() {
  const status = $("camera-status");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus(status, cameraErrorText(null), true);
    return;
  }
  setStatus(status, "Asking for the camera…");
  try {
    camera.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 } }, audio: false });
  } catch (error) {
    setStatus(status, cameraErrorText(error), true);
    return;
  }
  const video = $("camera-video");
  video.srcObject = camera.stream;
  $("camera-stage").hidden = false;
  $("camera-start").disabled = true;
  $("camera-stop").disabled = false;
  camera.running = true;
  camera.session = newSessionId();  // a fresh video on the server: new face ids and smoothing, as the CSV starts anew
  camera.rows = [];
  camera.frames = 0;
  camera.t0 = null;
  camera.fullAt = null;
  $("camera-csv").disabled = true;
  $("camera-csv").textContent = "Download CSV";
  setStatus(status, "Camera on.");
  cameraLoop(video);
}

function stopCamera() {
  camera.running = false;
  if (camera.stream) camera.stream.getTracks().forEach((track) => track.stop());
  camera.stream = null;
  $("camera-overlay").replaceChildren();
  $("camera-stage").hidden = true;
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
  showScores(null);
  setStatus($("camera-status"), "Camera off.");
}

function grabFrame(video, canvas) {
  const scale = Math.min(1, CONFIG.camera_max_side / Math.max(video.videoWidth, video.videoHeight));
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.8));
}

// One frame in flight at a time: the loop runs as fast as the server answers, never queueing frames.
// A loop serves one run: after Stop and Start, the old loop's late answer ends it instead of joining the new run.
async function cameraLoop(video) {
  const canvas = document.createElement("canvas");
  const session = camera.session;
  const current = () => camera.running && camera.session === session;
  while (current()) {
    if (video.readyState < 2 || !video.videoWidth) {
      await sleep(50);
      continue;
    }
    const frame = await grabFrame(video, canvas);
    if (!frame) {  // the canvas gave no picture (toBlob's null): nothing to send, the next grab may
      await sleep(100);
      continue;
    }
    const started = performance.now();
    try {
      const response = await fetch(`/api/frame?session=${session}&${priorParam()}`, {
        method: "POST", body: frame, headers: { "Content-Type": "image/jpeg" },
      });
      if (!current()) return;
      if (response.status === 429) {  // the server dropped this frame (busy): the next one a moment later
        await sleep(Math.min(retryAfterMs(response, 200), 250));  // a camera's frames are soon stale anyway
        continue;
      }
      // refused for good: every next frame would be too (one frame the server cannot decode, 415, is that frame's)
      if (response.status >= 400 && response.status < 500 && response.status !== 415) {
        const message = response.status === 401  // logged out, e.g. by a restart of the server
          ? "Logged out (the server may have restarted): reload the page and log in again."
          : `The camera stopped: ${await errorMessage(response)}`;
        stopCamera();
        return setStatus($("camera-status"), message, true);
      }
      if (!response.ok) {  // it answered (a frame it cannot decode, a server error): the next frame may do better
        const reason = await errorMessage(response);
        if (!current()) return;
        setStatus($("camera-status"), `The server could not analyse a frame (${reason}); retrying…`, true);
        await sleep(1000);
        continue;
      }
      const result = await response.json();
      if (current()) {
        recordCameraResult(result, started);
        showCameraResult(result, performance.now() - started);
      }
    } catch (error) {
      if (!current()) return;
      setStatus($("camera-status"), `The server did not answer (${error.message}); retrying…`, true);
      await sleep(1000);
    }
  }
}

function recordCameraResult(result, sentAt) {
  if (camera.t0 === null) camera.t0 = sentAt;
  const frame = camera.frames++;
  const time = ((sentAt - camera.t0) / 1000).toFixed(3);
  if (camera.rows.length >= CSV_MAX_ROWS) {  // full: say so on the button, which keeps the frames before
    if (camera.fullAt === null) {
      camera.fullAt = frame;
      $("camera-csv").textContent = `Download CSV (full: frames 0-${frame - 1})`;
    }
    return;
  }
  if (!result.faces.length) camera.rows.push([frame, time, ...CONFIG.csv_columns.slice(2).map(() => "")]);
  for (const face of result.faces) {
    camera.rows.push([frame, time, face.face_id, ...face.box, face.det_score === null ? "" : face.det_score.toFixed(4),
      face.emotion, ...CONFIG.class_names.map((name) => face.scores[name].toFixed(4))]);
  }
  $("camera-csv").disabled = false;
}

function downloadCameraCsv() {
  const lines = [CONFIG.csv_columns, ...camera.rows].map((row) => row.join(",") + "\r\n");  // as Python's csv
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob(lines, { type: "text/csv" }));
  link.download = "camera.csv";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function showCameraResult(result, roundTripMs) {
  drawBoxes($("camera-overlay"), result.faces, result.width, result.height);
  showScores(result.faces.length ? largestFace(result.faces) : null);
  const now = performance.now();
  camera.finished = camera.finished.filter((t) => now - t < 2000).concat(now);
  const spanS = (now - camera.finished[0]) / 1000;
  const fps = spanS > 0 ? (camera.finished.length - 1) / spanS : 0;
  $("camera-fps").textContent = fps.toFixed(1);
  const faces = result.faces.length === 1 ? "1 face" : `${result.faces.length} faces`;
  setStatus($("camera-status"),
    `${faces} · server ${Math.round(result.server_ms)} ms · round trip ${Math.round(roundTripMs)} ms`);
}

// ---- photo upload ----------------------------------------------------------------------------------
async function analysePhoto(event) {
  event.preventDefault();
  const status = $("photo-status");
  $("photo-result").hidden = true;  // the previous photo's result must not stand under this one's error
  const file = $("photo-file").files[0];
  if (!file) return setStatus(status, "Choose a photo first.", true);
  if (file.size > CONFIG.max_upload_mb * 2 ** 20) return setStatus(status, `Larger than ${CONFIG.max_upload_mb} MB.`, true);
  setStatus(status, "Analysing…");
  const response = await fetch(`/api/annotate?${priorParam()}`, { method: "POST", body: new FormData($("photo-form")) });
  if (!response.ok) return setStatus(status, await errorMessage(response), true);
  const result = await response.json();
  const faces = result.images[0].faces;
  $("photo-annotated").src = result.annotated;
  $("photo-faces").tBodies[0].replaceChildren(...faces.map(faceRow));
  $("photo-result").hidden = false;
  setStatus(status, faces.length === 1 ? "1 face found." : `${faces.length} faces found.`);
}

function faceRow(face, index) {
  const row = document.createElement("tr");
  const cells = [index + 1, face.box.join(", "), face.emotion, ...CONFIG.class_names.map((n) => face.scores[n].toFixed(3))];
  for (const value of cells) {
    const cell = document.createElement("td");
    cell.textContent = value;
    row.append(cell);
  }
  return row;
}

// ---- video upload: a background job with progress ----------------------------------------------------
// The page shows one video job at a time. `upload` numbers the uploads, so the answer and the progress loop of a
// replaced upload stop; `id` is the job on the server, `request` an upload still being sent.
const videoJob = { upload: 0, id: null, request: null };

function uploadVideo(event) {
  event.preventDefault();
  const file = $("video-file").files[0];
  const status = $("video-status");
  if (!file) return setStatus(status, "Choose a video first.", true);
  if (file.size > CONFIG.max_upload_mb * 2 ** 20) return setStatus(status, `Larger than ${CONFIG.max_upload_mb} MB.`, true);
  dropVideoJob();
  const upload = videoJob.upload;
  const progress = $("video-progress");
  progress.hidden = false;
  progress.value = 0;
  const form = new FormData();
  form.append(CONFIG.video_field, file);
  const request = new XMLHttpRequest();  // fetch() cannot report upload progress
  videoJob.request = request;
  request.open("POST", `/jobs?${priorParam()}`);
  request.upload.onprogress = (e) => {
    if (e.lengthComputable) setStatus(status, `Uploading… ${percent(e.loaded / e.total)}`);
  };
  request.upload.onload = () => { videoJob.request = null; };  // all sent: the server may make a job of it now
  request.onerror = () => {
    if (upload === videoJob.upload) setStatus(status, "The upload failed (connection lost).", true);
  };
  request.onload = () => {
    let body = {};
    try { body = JSON.parse(request.responseText); } catch { /* not JSON: reported below */ }
    if (upload !== videoJob.upload) {  // replaced while the server read it: its job goes too
      if (request.status === 202) fetch(`/jobs/${body.id}`, { method: "DELETE" }).catch(() => null);
      return;
    }
    if (request.status !== 202) {
      progress.hidden = true;
      return setStatus(status, body.error ? body.error.message : `Upload failed (${request.status}).`, true);
    }
    videoJob.id = body.id;
    followJob(body.id, upload);
  };
  request.send(form);
}

// A new upload or the delete button drops the shown job: deleted on the server, waiting, running or done, so it
// holds no place in the queue and never stays there without a button to delete it. The DELETE's answer, if any.
function dropVideoJob() {
  videoJob.upload += 1;
  if (videoJob.request) videoJob.request.abort();  // still being sent: the server makes no job of it
  const player = $("video-player");  // let go of the files first, so nothing asks for them once deleted
  player.removeAttribute("src");
  player.load();
  $("video-timeline").removeAttribute("src");
  $("video-result").hidden = true;
  const deleted = videoJob.id ? fetch(`/jobs/${videoJob.id}`, { method: "DELETE" }).catch(() => null) : null;
  videoJob.id = videoJob.request = null;
  return deleted;
}

async function followJob(jobId, upload) {
  const status = $("video-status");
  const progress = $("video-progress");
  while (upload === videoJob.upload) {  // until a newer upload or the delete button drops this job
    const response = await fetch(`/jobs/${jobId}`);
    if (upload !== videoJob.upload) return;
    if (!response.ok) return setStatus(status, await errorMessage(response), true);
    const job = await response.json();
    progress.value = job.progress;
    if (job.state === "done") return showJobResult(job);
    if (job.state === "failed") return setStatus(status, `Processing failed: ${job.error}`, true);
    setStatus(status, job.state === "queued" ? "Waiting in the queue…"  // maybe behind another user's video
      : `Processing frame ${job.done_frames} of ${job.total_frames}…`);
    await sleep(500);
  }
}

function showJobResult(job) {
  const files = job.files;
  const player = Object.keys(files).find((name) => name.startsWith("annotated."));
  $("video-player").src = player ? files[player] : "";
  $("video-timeline").src = files["timeline.png"] || "";
  $("video-timeline").hidden = !files["timeline.png"];
  $("video-links").replaceChildren("Download: ", ...Object.entries(files).flatMap(([name, url]) => {
    const link = document.createElement("a");
    link.href = `${url}?download=1`;
    link.textContent = name;
    return [link, " "];
  }));
  $("video-result").hidden = false;
  setStatus($("video-status"), `Done: ${job.done_frames} frames.`);
}

async function deleteVideoJob() {
  const response = await dropVideoJob();
  $("video-progress").hidden = true;
  if (response && response.ok) return setStatus($("video-status"), "Deleted.");
  setStatus($("video-status"), response ? await errorMessage(response) : "The server did not answer.", true);
}

// ---- start ---------------------------------------------------------------------------------------------
buildChart();
startLiveFeed();
$("camera-start").addEventListener("click", startCamera);
$("camera-stop").addEventListener("click", stopCamera);
$("camera-csv").addEventListener("click", downloadCameraCsv);
$("photo-form").addEventListener("submit", analysePhoto);
$("video-form").addEventListener("submit", uploadVideo);
$("video-delete").addEventListener("click", deleteVideoJob);
