// Progressive enhancement of the new-campaign form: record the message from the
// microphone, hear it back, and send it as the form's WAV upload. Without JavaScript (or
// without a microphone API) the recorder stays hidden and upload or TTS text remain.
(() => {
  "use strict";
  const box = document.getElementById("recorder");
  const input = document.getElementById("audio");
  if (!box || !input || !navigator.mediaDevices || !window.MediaRecorder || !window.DataTransfer) {
    return;
  }
  box.hidden = false;
  const start = document.getElementById("rec-start");
  const stop = document.getElementById("rec-stop");
  const play = document.getElementById("rec-play");
  let rec = null;
  let chunks = [];

  // 16-bit PCM mono WAV of float samples.
  function wav(samples, rate) {
    const out = new DataView(new ArrayBuffer(44 + samples.length * 2));
    const text = (at, s) => { for (let i = 0; i < s.length; i++) out.setUint8(at + i, s.charCodeAt(i)); };
    text(0, "RIFF"); out.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
    text(12, "fmt "); out.setUint32(16, 16, true); out.setUint16(20, 1, true); out.setUint16(22, 1, true);
    out.setUint32(24, rate, true); out.setUint32(28, rate * 2, true); out.setUint16(32, 2, true);
    out.setUint16(34, 16, true); text(36, "data"); out.setUint32(40, samples.length * 2, true);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      out.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return out.buffer;
  }

  start.addEventListener("click", async () => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    rec = new MediaRecorder(stream);
    chunks = [];
    rec.ondataavailable = (e) => chunks.push(e.data);
    rec.onstop = async () => {
      stream.getTracks().forEach((t) => t.stop());
      const ctx = new AudioContext();
      const audio = await ctx.decodeAudioData(await new Blob(chunks).arrayBuffer());
      const file = new File([wav(audio.getChannelData(0), audio.sampleRate)], "registrazione.wav",
        { type: "audio/wav" });
      const dt = new DataTransfer();
      dt.items.add(file);
      input.files = dt.files;
      play.src = URL.createObjectURL(file);
      play.hidden = false;
    };
    rec.start();
    start.disabled = true;
    stop.disabled = false;
  });
  stop.addEventListener("click", () => {
    if (rec) rec.stop();
    start.disabled = false;
    stop.disabled = true;
  });
})();
