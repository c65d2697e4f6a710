// Push-to-talk input: hold a button (mouse, pen or touch), or hold the space bar anywhere but
// in a text field. Reports one press and one release per hold, whatever input started it.

/** True for elements where the space bar types a character. */
function isTextEntry(el) {
  if (!el) return false;
  if (el.isContentEditable) return true;
  const tag = el.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag !== "INPUT") return false;
  return !["button", "checkbox", "radio", "range", "reset", "submit"].includes(el.type);
}

export class PushToTalk {
  /**
   * @param {HTMLButtonElement} button the hold-to-talk button
   * @param {{onPress: () => void, onRelease: () => void}} handlers
   */
  constructor(button, { onPress, onRelease }) {
    this.button = button;
    this.onPress = onPress;
    this.onRelease = onRelease;
    this.enabled = false;
    this.source = null; // what holds the button down: "pointer", "space" or "enter"
    this._listen();
  }

  get held() {
    return this.source !== null;
  }

  /** Turn the control on (push-to-talk mode) or off (open microphone); off releases it. */
  setEnabled(enabled) {
    this.enabled = enabled;
    if (!enabled) this.release(this.source);
  }

  press(source) {
    if (!this.enabled || this.held || this.button.disabled) return;
    this.source = source;
    this.button.setAttribute("aria-pressed", "true");
    this.onPress();
  }

  release(source) {
    if (!this.held || source !== this.source) return;
    this.source = null;
    this.button.setAttribute("aria-pressed", "false");
    this.onRelease();
  }

  _listen() {
    const b = this.button;
    b.addEventListener("pointerdown", (ev) => this._pointerDown(ev));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      b.addEventListener(type, () => this.release("pointer"));
    }
    b.addEventListener("contextmenu", (ev) => ev.preventDefault()); // long press on phones
    b.addEventListener("click", (ev) => ev.preventDefault()); // holding is the action
    b.addEventListener("keydown", (ev) => this._buttonKey(ev, true));
    b.addEventListener("keyup", (ev) => this._buttonKey(ev, false));
    document.addEventListener("keydown", (ev) => this._spaceKey(ev, true));
    document.addEventListener("keyup", (ev) => this._spaceKey(ev, false));
    // A hold must never outlive the page's focus (the key-up would go elsewhere).
    window.addEventListener("blur", () => this.release(this.source));
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) this.release(this.source);
    });
  }

  _pointerDown(ev) {
    if (ev.button !== 0) return;
    ev.preventDefault(); // no text selection, no focus-induced scrolling on phones
    capturePointer(this.button, ev.pointerId);
    this.press("pointer");
  }

  _buttonKey(ev, down) {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    if (down && !ev.repeat) this.press("enter");
    else if (!down) this.release("enter");
  }

  _spaceKey(ev, down) {
    if (ev.key !== " " || !this.enabled || isTextEntry(ev.target)) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    ev.preventDefault(); // no page scroll, no click on a focused button
    if (down && !ev.repeat) this.press("space");
    else if (!down) this.release("space");
  }
}

function capturePointer(button, pointerId) {
  try {
    button.setPointerCapture(pointerId); // release arrives even if the finger slides off
  } catch {
    // an already released pointer: the pointerup follows at once
  }
}
