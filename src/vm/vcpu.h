/* The vCPU loop: a thin run wrapper around the engine plus a pure exit
 * handler that tests call with made-up exits (design.md, style rule 9). */
#ifndef SHRIKE_VM_VCPU_H
#define SHRIKE_VM_VCPU_H

#include "engine/engine.h"
#include "vm/vm.h"

enum vcpu_action { VCPU_CONTINUE, VCPU_STOP };

/* Dispatches one exit to the buses or the VM's stop logic, counting it. */
enum vcpu_action vcpu_handle_exit(struct vm *vm, struct vcpu *vcpu, struct vcpu_exit *exit);

int vcpu_start(struct vcpu *vcpu);
void vcpu_join(struct vcpu *vcpu);

#endif
