//! The verification call's prompt: spoken once per town by the TTS (espeak-ng, Italian)
//! and kept as a WAV under the prompt directory, which the media path opens by path.

use std::path::PathBuf;

/// What the callee hears.
pub fn text(town: &str) -> String {
    format!(
        "Buongiorno. Questa è la chiamata di verifica del servizio di avviso di {town}. \
         Digita sulla tastiera il codice che vedi sullo schermo."
    )
}

/// The WAV of a town's prompt, synthesised at first use.
pub async fn path(
    prompt_dir: &std::path::Path,
    tenant: &str,
    town: &str,
) -> std::io::Result<PathBuf> {
    let dir = prompt_dir.join("web");
    let safe: String = tenant
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let p = dir.join(format!("verifica-{safe}.wav"));
    if tokio::fs::try_exists(&p).await.unwrap_or(false) {
        return Ok(p);
    }
    let words = text(town);
    let wav = tokio::task::spawn_blocking(move || codecs::tts::synthesize_wav(&words, Some("it")))
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    tokio::fs::create_dir_all(&dir).await?;
    let tmp = dir.join(format!("verifica-{safe}.wav.tmp"));
    tokio::fs::write(&tmp, wav).await?;
    tokio::fs::rename(&tmp, &p).await?;
    Ok(p)
}
