// A small typed event emitter: `on` returns the function that unsubscribes.

type Listener<T> = (event: T) => void;

export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  on<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void {
    const set = this.listeners.get(type) ?? new Set();
    this.listeners.set(type, set);
    set.add(listener);
    return () => set.delete(listener);
  }

  emit<K extends keyof Events>(type: K, event: Events[K]): void {
    for (const listener of this.listeners.get(type) ?? []) {
      try {
        (listener as Listener<Events[K]>)(event);
      } catch (e) {
        console.error(`a ${String(type)} listener failed`, e);
      }
    }
  }
}
