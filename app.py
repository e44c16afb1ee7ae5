"""BAG Explorer, the Gradio app that Hugging Face Spaces runs: restore a blurred photo, look at
the four blur-attention maps, watch them evolve over training, and ask which input pixels made
a patch sharp. The app itself is the `explorer/` package (one module per tab); this file only
starts it. The model is loaded in `main()`, never at import.

    python app.py                      # http://127.0.0.1:7860, shipped checkpoint
    python app.py --checkpoint other.safetensors --host 0.0.0.0 --port 8080
"""

from explorer import build_demo, configure_queue, launch_options, main

__all__ = ["build_demo", "configure_queue", "launch_options", "main"]

if __name__ == "__main__":
    main()
